"""Embeddings: Bodega versus infinity-emb, a dedicated embeddings server.

infinity-emb (``infinity_emb v2``, torch engine on the CPU) serves the
embedded all-MiniLM-L6-v2 folder that Bodega serves. It cannot share Bodega's
environment: 0.0.78 pins numpy < 2 and transformers < 5, which Bodega's own
engines need newer. So it lives in ``.venv-peers`` (``make peers-env``
installs ``bench/peers-requirements.txt``, with the same pinned torch);
without it this comparison is skipped and says so.

Two measurements, as ``bench.embeddings`` takes them against the in-process
encoder: the throughput of 64 concurrent single-text requests (one keep-alive
connection each; pairs, the order flipping, new texts each pair) and the p50
latency of one short new text, alternating between the servers.
"""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path
from typing import Any

from bodega.settings import EMBEDDED_EMBEDDINGS_ID, embedded_embeddings_path

from .cpu import CpuMeter, wait_for_quiet
from .embeddings import (
    CONCURRENT,
    GATE_WAIT,
    QUIET_CORES,
    Client,
    Timed,
    pick_pairs,
    texts_for,
    timed,
)
from .embeddings import write_config as bodega_config
from .registry import Options
from .report import Table, fmt, median, percentile, verdict
from .server import PEERS_VENV, BodegaServer, ServerProcess

PEER_NAME = "infinity-emb"
THROUGHPUT_TARGET = 1.0


def infinity_server(log_path: Path) -> ServerProcess:
    """infinity-emb on the embedded MiniLM folder, its defaults otherwise."""
    folder = embedded_embeddings_path()
    return ServerProcess(
        PEER_NAME,
        lambda port: [
            str(PEERS_VENV / "bin" / "infinity_emb"),
            "v2",
            "--model-id",
            str(folder),
            "--served-model-name",
            EMBEDDED_EMBEDDINGS_ID,
            "--engine",
            "torch",
            "--device",
            "cpu",
            "--port",
            str(port),
            "--url-prefix",
            "/v1",
            "--log-level",
            "warning",
        ],
        log_path,
        env={
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "INFINITY_ANONYMOUS_USAGE_STATS": "0",
            "DO_NOT_TRACK": "1",
        },
        start_timeout=300.0,
    )


def compare_embeddings(options: Options, records: list[dict[str, Any]]) -> Table:
    """Throughput and latency pairs; the table, with the records appended."""
    if not (PEERS_VENV / "bin" / "infinity_emb").exists():
        return Table(f"Embeddings vs {PEER_NAME}: skipped (run `make peers-env`)", ["-"])
    log_dir = Path(options.log_dir)
    pairs = options.reps(10, 3)
    singles = options.reps(200, 40)
    config = bodega_config(log_dir)
    with (
        BodegaServer(log_dir / "peers-bodega-embeddings.log", ["--config", str(config)]) as ours,
        infinity_server(log_dir / "peers-infinity.log") as peer,
    ):
        meter = CpuMeter(ours, peer)
        clients = {"bodega": Client(ours.port), PEER_NAME: Client(peer.port)}
        for client in clients.values():
            client.open(CONCURRENT)
        try:
            for w in range(3):  # warm both
                for client in clients.values():
                    client.concurrent(texts_for(-10 - w))
            throughput: dict[str, list[Timed]] = {name: [] for name in clients}
            for k in range(pairs):
                wait_for_quiet(meter, QUIET_CORES, GATE_WAIT)
                order = list(clients.items()) if k % 2 == 0 else list(clients.items())[::-1]
                for name, client in order:
                    throughput[name].append(timed(meter, partial(client.concurrent, texts_for(k))))
            latency: dict[str, list[float]] = {name: [] for name in clients}
            wait_for_quiet(meter, QUIET_CORES, GATE_WAIT)
            for i in range(singles):
                for name, client in clients.items():
                    text = f"short query {i} at {time.time_ns()}"
                    latency[name].append(timed(meter, partial(client.single, text)).seconds * 1e3)
        finally:
            for client in clients.values():
                client.close()
    return _table(throughput, latency, records)


def _table(
    throughput: dict[str, list[Timed]], latency: dict[str, list[float]], records: list[Any]
) -> Table:
    ours, theirs = throughput["bodega"], throughput[PEER_NAME]
    used, note = pick_pairs(ours, theirs)
    ratios = [b.seconds / a.seconds for a, b in used]  # texts/s ours over theirs
    ratio = median(ratios)
    tps = {
        name: median([CONCURRENT / t.seconds for t in samples])
        for name, samples in throughput.items()
    }
    p50 = {name: percentile(ms, 0.5) for name, ms in latency.items()}
    table = Table(
        title=f"Embeddings vs {PEER_NAME}: {EMBEDDED_EMBEDDINGS_ID}, {CONCURRENT} concurrent "
        "single-text requests; one short request's latency",
        columns=["server", "texts/s", "ratio", "target", "", "p50 ms", "p99 ms"],
    )
    table.add(
        "bodega",
        fmt(tps["bodega"], ".0f"),
        fmt(ratio, ".2f", prefix="x"),
        f">= x{THROUGHPUT_TARGET:g}, p50 <= peer",
        verdict(ratio >= THROUGHPUT_TARGET and p50["bodega"] <= p50[PEER_NAME], ratio),
        fmt(p50["bodega"], ".1f"),
        fmt(percentile(latency["bodega"], 0.99), ".1f"),
    )
    table.add(
        PEER_NAME,
        fmt(tps[PEER_NAME], ".0f"),
        "",
        "",
        "",
        fmt(p50[PEER_NAME], ".1f"),
        fmt(percentile(latency[PEER_NAME], 0.99), ".1f"),
    )
    table.notes.append(f"{note}; ratio: Bodega texts/s over the peer's per pair, median.")
    records.append(
        {
            "kind": "embeddings",
            "peer": PEER_NAME,
            "pairs": len(used),
            "ratio": ratio,
            "ratios": ratios,
            "texts_per_s": tps,
            "p50_ms": p50,
            "ok": ratio >= THROUGHPUT_TARGET and p50["bodega"] <= p50[PEER_NAME],
        }
    )
    return table
