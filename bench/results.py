"""Benchmark results as files: JSON for tools, PNG plots for people.

``write_results`` puts ``bench/results/<timestamp>.json`` (every record with
the machine it was measured on) and, for the chat comparisons, one PNG per
peer: aggregate tokens/s and TTFT p50 against concurrent streams, one line
per server. matplotlib is in the ``bench`` extra; without it only the JSON is
written.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from .report import machine_header

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _clean(value: Any) -> Any:
    """JSON has no NaN: a figure that could not be measured is null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def write_results(
    group: str, records: list[dict[str, Any]], folder: Path = RESULTS_DIR
) -> list[Path]:
    """Write ``records`` as JSON and the chat records as plots; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"{stamp}-{group}.json"
    document = {"group": group, "machine": machine_header(), "records": records}
    path.write_text(json.dumps(_clean(document), indent=2) + "\n")
    return [path, *_plots(records, folder, stamp, group)]


def _plots(records: list[dict[str, Any]], folder: Path, stamp: str, group: str) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    by_peer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record.get("kind") == "chat":
            by_peer[record["peer"]].append(record)
    written = []
    for peer, rows in by_peer.items():
        rows.sort(key=lambda r: r["streams"])
        streams = [r["streams"] for r in rows]
        figure, (tps, ttft) = plt.subplots(1, 2, figsize=(10, 4))
        for name in ("bodega", peer):
            tps.plot(streams, [r[name]["aggregate_tps"] for r in rows], marker="o", label=name)
            ttft.plot(streams, [r[name]["ttft_p50_ms"] for r in rows], marker="o", label=name)
        tps.set(xlabel="concurrent streams", ylabel="aggregate tokens/s", xticks=streams)
        ttft.set(xlabel="concurrent streams", ylabel="TTFT p50 (ms)", xticks=streams)
        for axes in (tps, ttft):
            axes.grid(alpha=0.3)
            axes.legend()
        figure.suptitle(f"Bodega vs {peer} ({rows[0]['max_tokens']}-token chat streams)")
        figure.tight_layout()
        slug = "".join(c if c.isalnum() else "-" for c in peer.lower()).strip("-")
        path = folder / f"{stamp}-{group}-{slug}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written
