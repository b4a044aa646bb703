"""Language models: Bodega's HTTP server versus llama.cpp driven in-process.

Two measurements on the embedded SmolLM2-135M GGUF, each taken as pairs (one
server sample and one in-process sample back to back, the order flipping every
pair) so that a noisy machine slows both sides alike:

1. One chat stream: time to first token and decode tokens/s, on the model as
   ``bodega launch`` serves it by default (one slot) and on an in-process
   ``xllamacpp.Server`` built with the same parameters.
2. Aggregate tokens/s with 1, 4 and 8 concurrent streams, on a model loaded
   through the admin API with ``max_concurrency: 8`` and on an in-process
   server with ``n_parallel = 8``, one thread per stream.

Pairs and the quiet-machine gate are ``pairs``'s; the prompts and both sides'
samples are ``lm_sides``'s; measurement 2 is ``lm_concurrency``.

The bodies match: the server's handler turns the HTTP request into exactly the
body ``engines.engine_body`` hands to llama.cpp. ``ignore_eos`` cannot be used
because Bodega does not pass it through, so the prompt asks for a long story
and every sample is checked to have produced ``max_tokens`` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

from bodega.settings import embedded_lm_spec

from .client import HttpChat
from .cpu import CpuMeter
from .engines import InProcessEngine, native_stderr_to
from .lm_concurrency import concurrency
from .lm_sides import (
    DECODE_RATIO_TARGET,
    MAX_TOKENS,
    WARMUP_TIMEOUT,
    local_sample,
    prompt,
    ratios,
    server_sample,
)
from .pairs import Pair, PairRunner, sample_timeout, usable
from .registry import Options, register
from .report import Table, fmt, median, spread, verdict
from .server import BodegaServer

TTFT_TARGET_MS = 5.0


# --- 1. single stream ------------------------------------------------------


def _per_token_ms(seconds: Sequence[float], pairs: Sequence[Pair]) -> list[float]:
    return [s * 1e3 / max(1, p.server.batch.tokens) for s, p in zip(seconds, pairs, strict=True)]


def _take_pairs(
    runner: PairRunner,
    meter: CpuMeter,
    server: BodegaServer,
    http: HttpChat,
    engine: InProcessEngine,
    *,
    want: int,
    max_tokens: int,
    first_prompt: int,
) -> list[Pair]:
    """Single-stream pairs until ``want`` are good or the runner's budget is spent."""
    pairs: list[Pair] = []
    while runner.want_more(pairs, want, max_tokens):
        prompts = [prompt(first_prompt + len(pairs))]
        timeout = sample_timeout(pairs, max_tokens, default=8.0)
        pairs.append(
            runner.take(
                partial(server_sample, meter, server, http, prompts, max_tokens, timeout),
                partial(local_sample, meter, engine, prompts, max_tokens, timeout),
            )
        )
    return pairs


def _diffs(server: Sequence[float], local: Sequence[float]) -> list[float]:
    return [s - loc for s, loc in zip(server, local, strict=True)]


def single_stream(options: Options, server: BodegaServer) -> Table:
    """TTFT and decode tokens/s of one stream, server versus in-process."""
    spec = embedded_lm_spec()
    engine = InProcessEngine(spec)
    http = HttpChat(server.base_url, spec.id)
    meter = CpuMeter(server)
    decode_runner = PairRunner(meter, 25.0 if options.quick else 70.0)
    ttft_runner = PairRunner(meter, 8.0 if options.quick else 25.0)
    try:
        http.warm()
        server_sample(meter, server, http, [prompt(0)], MAX_TOKENS, WARMUP_TIMEOUT)
        local_sample(meter, engine, [prompt(0)], MAX_TOKENS, WARMUP_TIMEOUT)
        pairs = _take_pairs(
            decode_runner,
            meter,
            server,
            http,
            engine,
            want=options.reps(full=9, quick=3),
            max_tokens=MAX_TOKENS,
            first_prompt=1,
        )
        ttft_pairs = _take_pairs(
            ttft_runner,
            meter,
            server,
            http,
            engine,
            want=options.reps(full=15, quick=6),
            max_tokens=1,
            first_prompt=100,
        )
    finally:
        http.close()
        engine.close()

    used, note = usable(pairs, MAX_TOKENS)
    ttft_used, ttft_note = usable(ttft_pairs, 1)
    table = Table(
        title=(
            f"LM single stream: {spec.id} (1 slot, context {spec.context_length}), "
            f"{MAX_TOKENS} tokens, temperature 0, medians of {len(used)} pairs"
        ),
        columns=[
            "metric",
            "server",
            "in-process",
            "paired diff",
            "target",
            "",
            "server min-max",
            "in-proc min-max",
        ],
    )

    def row_ms(label: str, server_ms: list[float], local_ms: list[float], digits: int) -> None:
        table.add(
            label,
            fmt(median(server_ms), f".{digits}f"),
            fmt(median(local_ms), f".{digits}f"),
            fmt(median(_diffs(server_ms, local_ms)), f"+.{digits}f", " ms"),
            "",
            "",
            spread(server_ms, f"{{:.{digits}f}}"),
            spread(local_ms, f"{{:.{digits}f}}"),
        )

    s_ttft1 = [p.server.first.ttft_ms for p in ttft_used]
    l_ttft1 = [p.local.first.ttft_ms for p in ttft_used]
    ttft_diff = median(_diffs(s_ttft1, l_ttft1))
    table.add(
        f"TTFT (ms), max_tokens=1, {len(ttft_used)} pairs",
        fmt(median(s_ttft1), ".1f"),
        fmt(median(l_ttft1), ".1f"),
        fmt(ttft_diff, "+.1f", " ms"),
        f"<= +{TTFT_TARGET_MS:g} ms",
        verdict(ttft_diff <= TTFT_TARGET_MS, ttft_diff),
        spread(s_ttft1),
        spread(l_ttft1),
    )
    timed = [p for p in ttft_used if p.server.engine_prompt_ms and p.local.engine_prompt_ms]
    row_ms(
        "  llama.cpp's own prompt eval (ms)",
        [p.server.engine_prompt_ms or 0.0 for p in timed],
        [p.local.engine_prompt_ms or 0.0 for p in timed],
        1,
    )
    row_ms(
        "  TTFT - prompt eval (ms)",
        [p.server.first.ttft_ms - (p.server.engine_prompt_ms or 0.0) for p in timed],
        [p.local.first.ttft_ms - (p.local.engine_prompt_ms or 0.0) for p in timed],
        1,
    )
    row_ms(
        f"TTFT (ms), {MAX_TOKENS}-token streams",
        [p.server.first.ttft_ms for p in used],
        [p.local.first.ttft_ms for p in used],
        1,
    )
    s_tps = [p.server.first.decode_tps for p in used]
    l_tps = [p.local.first.decode_tps for p in used]
    ratio = median(ratios(s_tps, l_tps))
    table.add(
        "decode tok/s",
        fmt(median(s_tps), ".1f"),
        fmt(median(l_tps), ".1f"),
        fmt(ratio, ".3f", prefix="x"),
        f">= x{DECODE_RATIO_TARGET:g}",
        verdict(ratio >= DECODE_RATIO_TARGET, ratio),
        spread(s_tps),
        spread(l_tps),
    )
    engine_pairs = [p for p in used if p.server.engine_tps and p.local.engine_tps]
    s_eng = [p.server.engine_tps or 0.0 for p in engine_pairs]
    l_eng = [p.local.engine_tps or 0.0 for p in engine_pairs]
    table.add(
        "llama.cpp's own eval tok/s",
        fmt(median(s_eng), ".1f"),
        fmt(median(l_eng), ".1f"),
        fmt(median(ratios(s_eng, l_eng)), ".3f", prefix="x"),
        "",
        "",
        spread(s_eng),
        spread(l_eng),
    )
    row_ms(
        "request total (ms)",
        [p.server.batch.wall * 1e3 for p in used],
        [p.local.batch.wall * 1e3 for p in used],
        0,
    )
    s_cpu = _per_token_ms(
        [p.server.cpu.own + p.server.cpu.http + p.server.cpu.handlers for p in used], used
    )
    l_cpu = [p.local.cpu.own * 1e3 / max(1, p.local.batch.tokens) for p in used]
    table.add(
        "CPU ms/token, all our processes",
        fmt(median(s_cpu), ".2f"),
        fmt(median(l_cpu), ".2f"),
        fmt(median(_diffs(s_cpu, l_cpu)), "+.2f"),
        "",
        "",
        spread(s_cpu, "{:.2f}"),
        spread(l_cpu, "{:.2f}"),
    )
    for label, seconds in (
        ("  server: HTTP process", [p.server.cpu.http for p in used]),
        ("  server: handler process", [p.server.cpu.handlers for p in used]),
        ("  server: bench client", [p.server.cpu.own for p in used]),
    ):
        per_token = _per_token_ms(seconds, used)
        table.add(label, fmt(median(per_token), ".2f"), "", "", "", "", spread(per_token, "{:.2f}"))
    cached = sorted(
        {s.cached_tokens for p in used for s in p.server.batch.streams + p.local.batch.streams}
    )
    problems = [problem for p in pairs for problem in p.problems(MAX_TOKENS)]
    problems += [problem for p in ttft_pairs for problem in p.problems(1)]
    waited = decode_runner.waited + ttft_runner.waited
    table.notes += [
        "TTFT: request sent -> first non-empty content delta. decode tok/s: "
        "(completion_tokens - 1) / (last delta - first delta).",
        "paired diff: median over pairs of server - in-process (ms) or server / in-process "
        "(tok/s); each pair runs both sides back to back, the order flipping every pair.",
        "Prompts: a different prompt per pair, the same on both sides (prompt-cache hits: "
        f"{', '.join(map(str, cached)) or '-'} tokens, the chat template's system prefix).",
        "llama.cpp's own eval tok/s and prompt eval ms: its timings (in-process) and the "
        "handler's log (server); TTFT - prompt eval is the time spent outside the engine's "
        "prompt processing.",
        f"In-process engine parameters: from the {engine.source} "
        "(handler = the handler's own LlamaCppEngine on the same LoadOptions).",
        "CPU ms/token: user+system CPU over the request / completion tokens; the server side "
        "sums the HTTP process, its handler and this client.",
        f"{MAX_TOKENS}-token pairs: {note}.",
        f"TTFT pairs: {ttft_note}.",
        f"{waited:.0f} s spent waiting for a quiet machine.",
        "Every sample produced exactly the tokens asked for (finish_reason=length)."
        if not problems
        else f"WARNING, invalid samples: {'; '.join(problems[:5])}",
    ]
    return table


@register("lm", "language models: embedded SmolLM2 GGUF on llama.cpp", needs=("xllamacpp",))
def run(options: Options) -> list[Table]:
    """Both language-model benchmarks on one server started for them."""
    log_dir = Path(options.log_dir)
    with (
        native_stderr_to(log_dir / "lm-inprocess.log"),
        BodegaServer(log_dir / "lm-server.log") as server,
    ):
        return [single_stream(options, server), concurrency(options, server)]
