"""Chat streams on Bodega and on a peer server, taken as pairs side by side.

Both servers get the same OpenAI chat requests over the same raw keep-alive
client (``bench.client.HttpChat``), the same prompts in the same order (so
their prompt caches hold the same history), and each pair runs one sample on
each back to back, the order flipping every pair, after waiting for a quiet
machine (``bench.lm.PairRunner``). A pair's ratio is Bodega's aggregate
tokens/s over the peer's; a level's figure is the median over its pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from .client import HttpChat
from .cpu import CpuMeter
from .lm_sides import prompt
from .pairs import Pair, PairRunner, Sample, usable
from .report import Table, fmt, median, percentile, verdict
from .server import ServerProcess
from .timing import Stream, run_together

WARMUP_TOKENS = 8
WARMUP_TIMEOUT = 60.0


@dataclass(frozen=True)
class ChatSide:
    """One server answering chat streams for ``model``, with ``workers`` connections."""

    name: str
    server: ServerProcess
    model: str


@dataclass(frozen=True)
class Targets:
    """The least Bodega/peer aggregate ratio per level, and the TTFT p50 margin."""

    ratio: dict[int, float]
    ttft_ms: float | None = None


def http_sample(
    meter: CpuMeter, http: HttpChat, prompts: Sequence[str], max_tokens: int, timeout: float
) -> Sample:
    """``prompts`` streamed together over ``http``, with the CPU used meanwhile."""
    calls = [partial(http.stream, p, max_tokens, i, timeout) for i, p in enumerate(prompts)]
    batch, cpu = meter.measure(partial(run_together, calls))
    return Sample(batch=batch, cpu=cpu)


def _side_figures(streams: list[Stream], samples: list[Sample]) -> dict[str, float]:
    return {
        "aggregate_tps": median([s.batch.aggregate_tps for s in samples]),
        "ttft_p50_ms": percentile([s.ttft_ms for s in streams], 0.50),
        "ttft_p99_ms": percentile([s.ttft_ms for s in streams], 0.99),
        "stream_tps": median([s.decode_tps for s in streams]),
    }


def compare_chat(
    bodega: ChatSide,
    peer: ChatSide,
    levels: Sequence[int],
    *,
    max_tokens: int,
    want: int,
    budget: float,
    targets: Targets,
    title: str,
) -> tuple[Table, list[dict[str, Any]]]:
    """Pairs at every level of concurrent streams; the table and JSON records."""
    workers = max(levels)
    ours = HttpChat(bodega.server.base_url, bodega.model, workers=workers)
    theirs = HttpChat(peer.server.base_url, peer.model, workers=workers)
    meter = CpuMeter(bodega.server, peer.server)
    runner = PairRunner(meter, budget)
    pairs: dict[int, list[Pair]] = {n: [] for n in levels}
    counter = 2000
    try:
        ours.warm()
        theirs.warm()
        warm = [prompt(1900 + i) for i in range(workers)]
        http_sample(meter, ours, warm, WARMUP_TOKENS, WARMUP_TIMEOUT)
        http_sample(meter, theirs, warm, WARMUP_TOKENS, WARMUP_TIMEOUT)
        first: list[Pair] = []
        if targets.ttft_ms is not None:
            first_runner = PairRunner(meter, budget / 5)
            while first_runner.want_more(first, 3 * want, 1):
                prompts = [prompt(counter)]
                counter += 1
                first.append(
                    first_runner.take(
                        partial(http_sample, meter, ours, prompts, 1, 30.0),
                        partial(http_sample, meter, theirs, prompts, 1, 30.0),
                    )
                )
        runner.take_levels(
            pairs,
            want,
            max_tokens,
            (partial(http_sample, meter, ours), partial(http_sample, meter, theirs)),
            prompt=prompt,
            first_prompt=counter,
            timeout=lambda n: 20.0 + 5.0 * n,
        )
    finally:
        ours.close()
        theirs.close()
    table, records = _report(bodega, peer, pairs, max_tokens, targets, title, runner.waited)
    if targets.ttft_ms is not None:
        _first_token(table, records, first, targets.ttft_ms, peer.name)
    return table, records


def _first_token(
    table: Table, records: list[dict[str, Any]], pairs: list[Pair], target_ms: float, peer: str
) -> None:
    """The paired TTFT gap of one-token requests: the target the levels' p50s
    (a few batched samples each) are too noisy for."""
    used, note = usable(pairs, 1)
    gaps = [p.server.first.ttft_ms - p.local.first.ttft_ms for p in used]
    gap = median(gaps)
    ok = gap <= target_ms
    ours = median([p.server.first.ttft_ms for p in used])
    theirs = median([p.local.first.ttft_ms for p in used])
    table.notes.append(
        f"TTFT, one stream, max_tokens 1: Bodega {ours:.1f} ms, "
        f"peer {theirs:.1f} ms, paired gap {gap:+.1f} ms "
        f"(target <= +{target_ms:g} ms: {verdict(ok, gap)}); {note}."
    )
    records.append(
        {
            "kind": "ttft",
            "peer": peer,
            "gap_ms": gap,
            "gaps_ms": gaps,
            "ok": ok,
        }
    )


def _report(
    bodega: ChatSide,
    peer: ChatSide,
    pairs: dict[int, list[Pair]],
    max_tokens: int,
    targets: Targets,
    title: str,
    waited: float,
) -> tuple[Table, list[dict[str, Any]]]:
    table = Table(
        title=title,
        columns=[
            "streams",
            "pairs",
            "bodega tok/s",
            f"{peer.name} tok/s",
            "ratio",
            "target",
            "",
            "TTFT p50 ms",
            "peer p50",
            "TTFT p99 ms",
            "peer p99",
            "stream tok/s",
            "peer",
        ],
    )
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    problems: list[str] = []
    for n, level in pairs.items():
        used, note = usable(level, max_tokens)
        notes.append(f"{n} stream(s): {note}.")
        problems += [problem for p in level for problem in p.problems(max_tokens)]
        ratios = [p.server.batch.aggregate_tps / p.local.batch.aggregate_tps for p in used]
        ratio = median(ratios)
        ours = _side_figures(
            [s for p in used for s in p.server.batch.streams], [p.server for p in used]
        )
        theirs = _side_figures(
            [s for p in used for s in p.local.batch.streams], [p.local for p in used]
        )
        ttft_gap = ours["ttft_p50_ms"] - theirs["ttft_p50_ms"]
        target = targets.ratio.get(n)
        ok = target is None or ratio >= target
        table.add(
            n,
            len(used),
            fmt(ours["aggregate_tps"], ".1f"),
            fmt(theirs["aggregate_tps"], ".1f"),
            fmt(ratio, ".3f", prefix="x"),
            f">= x{target:g}" if target is not None else "-",
            verdict(ok, ratio) if target is not None else "",
            fmt(ours["ttft_p50_ms"], ".0f"),
            fmt(theirs["ttft_p50_ms"], ".0f"),
            fmt(ours["ttft_p99_ms"], ".0f"),
            fmt(theirs["ttft_p99_ms"], ".0f"),
            fmt(ours["stream_tps"], ".1f"),
            fmt(theirs["stream_tps"], ".1f"),
        )
        records.append(
            {
                "kind": "chat",
                "peer": peer.name,
                "streams": n,
                "max_tokens": max_tokens,
                "pairs": len(used),
                "ratio": ratio,
                "ratios": ratios,
                "target": target,
                "ttft_p50_gap_ms": ttft_gap,
                "ok": ok,
                "bodega": ours,
                peer.name: theirs,
            }
        )
    table.notes += [
        "Aggregate tok/s: completion tokens of all streams / (last end - first send), median "
        "over pairs; ratio: Bodega / peer per pair, median. TTFT percentiles over every stream; "
        "stream tok/s: each stream's decode rate, median.",
        "TTFT at several streams is mostly their prompts' batched prefill; the one-stream "
        "TTFT target is measured on its own (below). "
        + f"{waited:.0f} s spent waiting for a quiet machine.",
        *notes,
        f"Every stream produced exactly {max_tokens} tokens (finish_reason=length)."
        if not problems
        else f"WARNING, invalid streams: {'; '.join(problems[:5])}"
        + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""),
    ]
    return table, records
