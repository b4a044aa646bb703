"""``python -m bench [--quick] [--only GROUP ...] [--list]``: run the benchmark groups."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence

from .registry import Options, load_groups, missing_needs
from .report import format_table, load_average, machine_header


def _parser(group_names: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Bodega latency and throughput, side by side with the raw engines.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions (noisier figures, shorter run)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(group_names),
        metavar="GROUP",
        help=f"run only this group (repeatable): {', '.join(group_names)}",
    )
    parser.add_argument("--list", action="store_true", help="list the groups and exit")
    parser.add_argument(
        "--log-dir", help="where server and engine logs go (default: a new temporary folder)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the selected groups and print their tables; returns the exit status."""
    groups = load_groups()
    args = _parser(list(groups)).parse_args(argv)
    if args.list:
        for group in groups.values():
            print(f"{group.name:12} {group.description}")
        return 0
    selected = [groups[name] for name in args.only] if args.only else list(groups.values())
    log_dir = args.log_dir or tempfile.mkdtemp(prefix="bodega-bench-")
    options = Options(quick=args.quick, log_dir=log_dir)

    print(machine_header())
    print(f"  mode    : {'quick' if args.quick else 'full'}; logs in {log_dir}")
    print(flush=True)
    started = time.perf_counter()
    failed = 0
    for group in selected:
        missing = missing_needs(group)
        if missing:
            print(f"[{group.name}] skipped: {', '.join(missing)} not installed\n")
            continue
        group_start = time.perf_counter()
        print(f"[{group.name}] {group.description} ...", flush=True)
        try:
            tables = group.run(options)
        except Exception as exc:  # one broken group must not hide the others
            failed += 1
            print(f"[{group.name}] FAILED: {type(exc).__name__}: {exc}\n", flush=True)
            continue
        for table in tables:
            print()
            print(format_table(table))
        print(f"\n[{group.name}] {time.perf_counter() - group_start:.1f} s\n", flush=True)
    print(f"total {time.perf_counter() - started:.1f} s; load avg at end: {load_average()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
