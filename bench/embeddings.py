"""Embeddings: Bodega's server versus sentence-transformers in-process.

On the embedded all-MiniLM-L6-v2, served alone (``max_concurrency: 64``,
the default micro-batching window), two measurements:

1. Throughput: 64 concurrent single-text requests through HTTP (one
   keep-alive connection each, a near-free asyncio client) versus one
   in-process ``SentenceTransformer.encode`` of the same 64 texts, as
   interleaved pairs. Every sample uses new texts, so the server's LRU cache
   never answers. Target: server texts/s >= 0.8 x in-process.
2. Latency of one short request (a new text each time: a cache miss), in
   sequence: p50 and p99; beside it, the in-process ``encode`` of one text,
   and a repeated text (answered from the cache). Target: p50 <= 15 ms.

Both sides run torch alike: the in-process side gets the handler's
``OMP_WAIT_POLICY=PASSIVE`` (unless set already), since with spinning OpenMP
threads an in-process ``encode`` on a busy machine runs several times slower
and the ratio would flatter the server.

Noise: each sample records the CPU other processes used meanwhile; figures
come from quiet samples (others < ``QUIET_CORES``) when there are enough.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bodega.settings import EMBEDDED_EMBEDDINGS_ID, embedded_embeddings_path

from .cpu import CpuMeter, CpuUsage, wait_for_quiet
from .rawhttp import Connection, embeddings_body, vector_count
from .registry import Options, register
from .report import Table, fmt, median, percentile, spread, verdict
from .server import BodegaServer

CONCURRENT = 64
RATIO_TARGET = 0.8
P50_TARGET_MS = 15.0
QUIET_CORES = 0.3
GATE_WAIT = 6.0
TOPICS = ("the weather", "a recipe", "train travel", "a football match", "tax rules", "gardening")


def texts_for(sample: int, n: int = CONCURRENT) -> list[str]:
    """``n`` sentences no earlier sample used (so no cache answers them)."""
    return [
        f"Sample {sample}, sentence {i}: a short note about {TOPICS[i % len(TOPICS)]} "
        f"written for the benchmark, number {sample * 1000 + i}."
        for i in range(n)
    ]


@dataclass
class Timed:
    """Seconds one step took, and who used the CPU meanwhile."""

    seconds: float
    cpu: CpuUsage

    @property
    def quiet(self) -> bool:
        """Whether others used less than ``QUIET_CORES`` meanwhile."""
        return self.cpu.foreign_cores < QUIET_CORES


def write_config(folder: Path) -> Path:
    """A config serving only the embedded embeddings model."""
    path = folder / "bench-embeddings.yaml"
    path.write_text(
        "models:\n"
        f"  - model_id: {EMBEDDED_EMBEDDINGS_ID}\n"
        "    model_type: embeddings\n"
        f"    model_path: {embedded_embeddings_path()}\n"
        f"    max_concurrency: {CONCURRENT}\n"
        "    queue_size: 1024\n"
    )
    return path


class Client:
    """A pool of keep-alive connections on one event loop."""

    def __init__(self, port: int, model: str = EMBEDDED_EMBEDDINGS_ID) -> None:
        self.port = port
        self.model = model
        self.loop = asyncio.new_event_loop()
        self.conns: list[Connection] = []

    def open(self, n: int) -> None:
        """Open ``n`` connections."""

        async def go() -> list[Connection]:
            return await asyncio.gather(
                *[Connection.open("127.0.0.1", self.port) for _ in range(n)]
            )

        self.conns = self.loop.run_until_complete(go())

    def concurrent(self, texts: list[str]) -> None:
        """One request per text, all at once, each on its own connection."""

        async def one(conn: Connection, text: str) -> None:
            reply = await conn.post_json("/v1/embeddings", embeddings_body(self.model, text))
            assert vector_count(reply) == 1

        async def go() -> None:
            await asyncio.gather(*[one(c, t) for c, t in zip(self.conns, texts, strict=False)])

        self.loop.run_until_complete(go())

    def single(self, text: str) -> None:
        """One request on the first connection."""
        body = embeddings_body(self.model, text)
        self.loop.run_until_complete(self.conns[0].post_json("/v1/embeddings", body))

    def close(self) -> None:
        """Close every connection and the loop."""

        async def go() -> None:
            await asyncio.gather(*[c.close() for c in self.conns])

        self.loop.run_until_complete(go())
        self.loop.close()


def timed(meter: CpuMeter, step: Callable[[], Any]) -> Timed:
    """Run ``step``, timing it and metering the CPU."""

    def run() -> float:
        t0 = time.perf_counter()
        step()
        return time.perf_counter() - t0

    seconds, usage = meter.measure(run)
    return Timed(seconds, usage)


def pick(samples: list[Timed]) -> tuple[list[Timed], str]:
    """The quiet samples when there are enough, else all (flagged)."""
    quiet = [s for s in samples if s.quiet]
    loads = ", ".join(f"{s.cpu.foreign_cores:.2f}" for s in samples)
    if len(quiet) >= max(2, len(samples) // 3):
        return quiet, f"{len(quiet)}/{len(samples)} quiet samples used (others' cores: {loads})"
    return (
        samples,
        f"WARNING: busy machine, all {len(samples)} samples used (others' cores: {loads})",
    )


@register(
    "embeddings",
    "embeddings: 64 concurrent requests vs in-process encode; one request's latency",
    needs=("sentence_transformers", "torch"),
)
def run(options: Options) -> list[Table]:
    """Measure throughput and latency on the embedded embeddings model."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    # The in-process side runs torch as the handler does (handler_env):
    # libgomp reads this when torch loads, so it only holds if torch is new here.
    policy_note = f"in-process OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}"
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        policy_note = f"both sides OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}"
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(embedded_embeddings_path(), local_files_only=True)
    log_dir = Path(options.log_dir)
    config = write_config(log_dir)
    pairs = options.reps(12, 4)
    singles = options.reps(300, 60)
    with BodegaServer(log_dir / "embeddings-server.log", ["--config", str(config)]) as server:
        meter = CpuMeter(server)
        client = Client(server.port)
        client.open(CONCURRENT)
        try:
            for w in range(3):  # warm both sides
                client.concurrent(texts_for(-1 - w))
                model.encode(texts_for(-1 - w))
            server_side: list[Timed] = []
            local_side: list[Timed] = []
            for k in range(pairs):
                wait_for_quiet(meter, QUIET_CORES, GATE_WAIT)
                texts = texts_for(k)
                steps: list[tuple[list[Timed], Callable[[], Any]]] = [
                    (server_side, partial(client.concurrent, texts)),
                    (local_side, partial(model.encode, texts)),
                ]
                for bucket, step in steps if k % 2 == 0 else steps[::-1]:
                    bucket.append(timed(meter, step))

            latency: list[Timed] = []
            local_one: list[Timed] = []
            wait_for_quiet(meter, QUIET_CORES, GATE_WAIT)
            for i in range(singles):
                text = f"short query {i} at {time.time_ns()}"
                latency.append(timed(meter, partial(client.single, text)))
                if i % 5 == 0:
                    local_one.append(timed(meter, partial(model.encode, [text])))
            cached = [
                timed(meter, lambda: client.single("the same short query")) for _ in range(30)
            ]
        finally:
            client.close()
    throughput = _throughput_table(server_side, local_side)
    throughput.notes.append(policy_note)
    return [throughput, _latency_table(latency, local_one, cached)]


def pick_pairs(first: list[Timed], second: list[Timed]) -> tuple[list[tuple[Timed, Timed]], str]:
    """The pairs (quiet on both sides, when there are enough) figures come
    from, and a note saying which."""
    pairs = list(zip(first, second, strict=True))
    quiet = [(a, b) for a, b in pairs if a.quiet and b.quiet]
    if len(quiet) >= max(2, len(pairs) // 3):
        return quiet, f"{len(quiet)}/{len(pairs)} quiet pairs used"
    return pairs, f"WARNING: busy machine, all {len(pairs)} pairs used"


def _throughput_table(server_side: list[Timed], local_side: list[Timed]) -> Table:
    used, note = pick_pairs(server_side, local_side)
    loads = ", ".join(
        f"{max(s.cpu.foreign_cores, loc.cpu.foreign_cores):.2f}"
        for s, loc in zip(server_side, local_side, strict=True)
    )
    srv = [CONCURRENT / s.seconds for s, _ in used]
    loc = [CONCURRENT / x.seconds for _, x in used]
    ratios = [a / b for a, b in zip(srv, loc, strict=True)]
    ratio = median(ratios)
    table = Table(
        f"Embeddings throughput: {CONCURRENT} concurrent single-text requests vs one encode()",
        ["side", "texts/s (median)", "range", "ms per 64"],
    )
    table.add(
        "bodega server (HTTP)",
        fmt(median(srv), ".0f"),
        spread(srv, "{:.0f}"),
        fmt(1000 * CONCURRENT / median(srv), ".0f"),
    )
    table.add(
        "in-process encode()",
        fmt(median(loc), ".0f"),
        spread(loc, "{:.0f}"),
        fmt(1000 * CONCURRENT / median(loc), ".0f"),
    )
    table.add(
        f"ratio (target >= {RATIO_TARGET})",
        fmt(ratio, ".2f"),
        spread(ratios, "{:.2f}"),
        verdict(ratio >= RATIO_TARGET, ratio),
    )
    table.notes.append(f"{note}; others' CPU per pair, cores: {loads}")
    return table


def _latency_table(latency: list[Timed], local_one: list[Timed], cached: list[Timed]) -> Table:
    used, note = pick(latency)
    ms = [1000 * s.seconds for s in used]
    local_ms = [1000 * s.seconds for s in local_one]
    cached_ms = [1000 * s.seconds for s in cached]
    p50 = statistics.median(ms) if ms else float("nan")
    table = Table(
        "Embeddings latency: one short text per request", ["case", "p50 ms", "p99 ms", "n"]
    )
    table.add(
        "bodega, new text (cache miss)", fmt(p50, ".1f"), fmt(percentile(ms, 0.99), ".1f"), len(ms)
    )
    table.add(
        "bodega, repeated text (LRU cache)",
        fmt(median(cached_ms), ".1f"),
        fmt(percentile(cached_ms, 0.99), ".1f"),
        len(cached_ms),
    )
    table.add(
        "in-process encode([text])",
        fmt(median(local_ms), ".1f"),
        fmt(percentile(local_ms, 0.99), ".1f"),
        len(local_ms),
    )
    table.add(f"target p50 <= {P50_TARGET_MS:g} ms", verdict(p50 <= P50_TARGET_MS, p50), "", "")
    table.notes.append(note.split(" (others")[0])
    return table
