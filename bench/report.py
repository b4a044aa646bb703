"""Plain-text tables and the machine header the benchmarks print."""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path


@dataclass
class Table:
    """A titled table: column names, rows of cells, notes printed under it."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        """Append one row; cells are formatted with ``str``."""
        self.rows.append([str(c) for c in cells])


def format_table(table: Table) -> str:
    """``table`` as aligned text: first column left, the others right-aligned."""
    widths = [len(c) for c in table.columns]
    for row in table.rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    rule = "-" * len(line(["-" * w for w in widths]))
    out = [table.title, rule, line(table.columns), rule]
    out += [line(row) for row in table.rows]
    out.append(rule)
    out += [f"  {note}" for note in table.notes]
    return "\n".join(out)


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN for none."""
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def fmt(value: float, spec: str, suffix: str = "", prefix: str = "") -> str:
    """``value`` formatted with ``spec``, or ``-`` when it is not a number."""
    if math.isnan(value):
        return "-"
    return f"{prefix}{value:{spec}}{suffix}"


def spread(values: Sequence[float], pattern: str = "{:.1f}") -> str:
    """``min-max`` of ``values`` for a column that shows the noise."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    return f"{pattern.format(min(values))}-{pattern.format(max(values))}"


def verdict(ok: bool, measured: float = 0.0) -> str:
    """The mark printed next to a target; ``n/a`` when nothing was measured."""
    if math.isnan(measured):
        return "n/a"
    return "ok" if ok else "MISS"


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_revision() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return "unknown"
    dirty = ""
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        dirty = "+dirty" if status.stdout.strip() else ""
    except OSError:
        pass
    return (result.stdout.strip() or "unknown") + dirty


def load_average() -> str:
    """The 1/5/15-minute load averages, or ``n/a``."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_header() -> str:
    """A few lines saying what machine and software these figures come from."""
    lines = [
        "Bodega benchmarks",
        f"  machine : {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs "
        f"({_cpu_model()})",
        f"  python  : {sys.version.split()[0]} ({platform.python_implementation()})",
        f"  packages: xllamacpp {_package_version('xllamacpp')}, "
        f"httpx {_package_version('httpx')}, hypercorn {_package_version('hypercorn')}",
        f"  git     : {_git_revision()}",
        f"  load avg: {load_average()} (at start)",
    ]
    return "\n".join(lines)
