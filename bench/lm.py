"""Language models: Bodega's HTTP server versus llama.cpp driven in-process.

Two measurements on the embedded SmolLM2-135M GGUF, each interleaved server /
in-process (the order flips every repetition) so that a noisy machine slows
both sides alike:

1. One chat stream: time to first token and decode tokens/s, on the model as
   ``bodega launch`` serves it by default (one slot) and on an in-process
   ``xllamacpp.Server`` built with the same parameters.
2. Aggregate tokens/s with 1, 4 and 8 concurrent streams, on a model loaded
   through the admin API with ``max_concurrency: 8`` and on an in-process
   server with ``n_parallel = 8``, one thread per stream.

Prompt cache: every stream gets its own prompt (a counter and a topic at the
start of the user message), and both sides get the same prompts in the same
order, so each side's slots hold the same history and only the shared chat
template prefix is ever reused from the cache, alike on both sides.

The bodies match: the server's handler turns the HTTP request into exactly the
body ``engines.engine_body`` hands to llama.cpp. ``ignore_eos`` cannot be used
because Bodega does not pass it through, so the prompt asks for a long story
and every sample is checked to have produced ``max_tokens`` tokens.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import psutil

from bodega.settings import EMBEDDED_LM_ID, embedded_lm_spec

from .client import HttpChat
from .engines import InProcessEngine, native_stderr_to
from .registry import Options, register
from .report import Table, median, spread, verdict
from .server import BodegaServer
from .timing import Batch, Stream, run_together

MAX_TOKENS = 128
CONCURRENCY = (1, 4, 8)
PARALLEL_MODEL_ID = f"{EMBEDDED_LM_ID}-x8"
PARALLEL_SLOTS = 8
PARALLEL_CONTEXT = 2048
DECODE_RATIO_TARGET = 0.95
TTFT_TARGET_MS = 5.0
TOPICS = (
    "a lighthouse keeper and a storm",
    "a robot learning to paint",
    "two rival bakers in a small town",
    "a dragon who collects old maps",
    "an astronaut lost on a quiet moon",
    "a detective who cannot smell",
    "a river that flows uphill",
    "the last library on Earth",
)
T = TypeVar("T")
_EVAL_LINE = re.compile(r"\|\s+eval time =\s+([\d.]+) ms /\s+(\d+) tokens")


def prompt(i: int) -> str:
    """The ``i``-th prompt: unique from its first tokens, asking for long text."""
    topic = TOPICS[i % len(TOPICS)]
    return (
        f"Request {i}. Write a long, detailed story about {topic}. "
        "Describe every scene at length, with dialogue."
    )


def _own_cpu() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


@dataclass
class SingleSamples:
    """Per-repetition figures of the single-stream benchmark."""

    server: list[Stream] = field(default_factory=list)
    local: list[Stream] = field(default_factory=list)
    server_engine_tps: list[float] = field(default_factory=list)
    http_cpu: list[float] = field(default_factory=list)
    handler_cpu: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)
    local_cpu: list[float] = field(default_factory=list)


def _engine_tps_from_log(server: BodegaServer, offset: int) -> float | None:
    """llama.cpp's own decode speed for the request logged after ``offset``."""
    for _ in range(25):
        found = _EVAL_LINE.findall(server.log_since(offset))
        if found:
            ms, tokens = found[-1]
            return int(tokens) / (float(ms) / 1e3) if float(ms) > 0 else None
        time.sleep(0.02)
    return None


def _server_single(server: BodegaServer, http: HttpChat, text: str, out: SingleSamples) -> None:
    offset = server.log_size()
    http_before, handler_before = server.cpu_seconds()
    client_before = _own_cpu()
    stream = http.stream(text, MAX_TOKENS)
    client_after = _own_cpu()
    http_after, handler_after = server.cpu_seconds()
    tokens = max(1, stream.completion_tokens)
    out.server.append(stream)
    out.http_cpu.append((http_after - http_before) * 1e3 / tokens)
    out.handler_cpu.append((handler_after - handler_before) * 1e3 / tokens)
    out.client_cpu.append((client_after - client_before) * 1e3 / tokens)
    engine_tps = _engine_tps_from_log(server, offset)
    if engine_tps is not None:
        out.server_engine_tps.append(engine_tps)


def _local_single(engine: InProcessEngine, text: str, out: SingleSamples) -> None:
    before = _own_cpu()
    stream = engine.stream(text, MAX_TOKENS)
    after = _own_cpu()
    out.local.append(stream)
    out.local_cpu.append((after - before) * 1e3 / max(1, stream.completion_tokens))


def _invalid(streams: list[Stream]) -> list[str]:
    return [problem for s in streams if (problem := s.check(MAX_TOKENS)) is not None]


def single_stream(options: Options, server: BodegaServer) -> Table:
    """TTFT and decode tokens/s of one stream, server versus in-process."""
    spec = embedded_lm_spec()
    reps = options.reps(full=5, quick=3)
    assert spec.context_length is not None
    engine = InProcessEngine(spec.model_path, spec.context_length, spec.max_concurrency)
    http = HttpChat(server.base_url, spec.id)
    samples = SingleSamples()
    try:
        http.warm()
        warm = SingleSamples()
        _server_single(server, http, prompt(0), warm)
        _local_single(engine, prompt(0), warm)
        for rep in range(1, reps + 1):
            text = prompt(rep)
            sides: list[Callable[[], None]] = [
                partial(_server_single, server, http, text, samples),
                partial(_local_single, engine, text, samples),
            ]
            for run in sides if rep % 2 else reversed(sides):
                run()
    finally:
        http.close()
        engine.close()

    s_ttft = [s.ttft_ms for s in samples.server]
    l_ttft = [s.ttft_ms for s in samples.local]
    s_tps = [s.decode_tps for s in samples.server]
    l_tps = [s.decode_tps for s in samples.local]
    s_e2e = [(s.t_done - s.t_send) * 1e3 for s in samples.server]
    l_e2e = [(s.t_done - s.t_send) * 1e3 for s in samples.local]
    l_engine = [s.engine_tps for s in samples.local if s.engine_tps is not None]
    ttft_diff = median(s_ttft) - median(l_ttft)
    ratio = median(s_tps) / median(l_tps)

    table = Table(
        title=(
            f"LM single stream: {spec.id}, {MAX_TOKENS} tokens, temperature 0, "
            f"{reps} reps after 1 warm-up per side, medians"
        ),
        columns=[
            "metric",
            "server",
            "in-process",
            "server vs in-proc",
            "target",
            "",
            "server min-max",
            "in-proc min-max",
        ],
    )
    table.add(
        "TTFT (ms)",
        f"{median(s_ttft):.1f}",
        f"{median(l_ttft):.1f}",
        f"{ttft_diff:+.1f} ms",
        f"<= +{TTFT_TARGET_MS:g} ms",
        verdict(ttft_diff <= TTFT_TARGET_MS),
        spread(s_ttft),
        spread(l_ttft),
    )
    table.add(
        "decode tok/s",
        f"{median(s_tps):.1f}",
        f"{median(l_tps):.1f}",
        f"x{ratio:.3f}",
        f">= x{DECODE_RATIO_TARGET:g}",
        verdict(ratio >= DECODE_RATIO_TARGET),
        spread(s_tps),
        spread(l_tps),
    )
    if samples.server_engine_tps and l_engine:
        engine_ratio = median(samples.server_engine_tps) / median(l_engine)
        table.add(
            "llama.cpp's own eval tok/s",
            f"{median(samples.server_engine_tps):.1f}",
            f"{median(l_engine):.1f}",
            f"x{engine_ratio:.3f}",
            "",
            "",
            spread(samples.server_engine_tps),
            spread(l_engine),
        )
    table.add(
        "request total (ms)",
        f"{median(s_e2e):.0f}",
        f"{median(l_e2e):.0f}",
        f"{median(s_e2e) - median(l_e2e):+.0f} ms",
        "",
        "",
        spread(s_e2e, "{:.0f}"),
        spread(l_e2e, "{:.0f}"),
    )
    server_cpu = [
        h + w + c
        for h, w, c in zip(samples.http_cpu, samples.handler_cpu, samples.client_cpu, strict=True)
    ]
    table.add(
        "CPU ms/token, all processes",
        f"{median(server_cpu):.2f}",
        f"{median(samples.local_cpu):.2f}",
        f"{median(server_cpu) - median(samples.local_cpu):+.2f}",
        "",
        "",
        spread(server_cpu, "{:.2f}"),
        spread(samples.local_cpu, "{:.2f}"),
    )
    table.add(
        "  of which HTTP process",
        f"{median(samples.http_cpu):.2f}",
        "",
        "",
        "",
        "",
        spread(samples.http_cpu, "{:.2f}"),
        "",
    )
    table.add(
        "  of which handler process",
        f"{median(samples.handler_cpu):.2f}",
        "",
        "",
        "",
        "",
        spread(samples.handler_cpu, "{:.2f}"),
        "",
    )
    table.add(
        "  of which bench client",
        f"{median(samples.client_cpu):.2f}",
        "",
        "",
        "",
        "",
        spread(samples.client_cpu, "{:.2f}"),
        "",
    )
    cached = sorted({s.cached_tokens for s in samples.server + samples.local})
    table.notes += [
        "TTFT: request sent -> first non-empty content delta. decode tok/s: "
        "(completion_tokens - 1) / (last delta - first delta).",
        "Prompts: a different prompt per repetition, the same sequence on both sides "
        f"(prompt-cache hits per request: {', '.join(map(str, cached))} tokens, both sides).",
        "llama.cpp's own eval tok/s: from its timings (in-process) and the handler's log "
        "(server): the engine's speed, before delivery.",
        "CPU ms/token: user+system CPU over the request / completion tokens; "
        "the server side sums the HTTP process, its handlers and this client.",
    ]
    problems = _invalid(samples.server + samples.local)
    table.notes.append(
        f"Every sample produced exactly {MAX_TOKENS} tokens (finish_reason=length)."
        if not problems
        else f"WARNING, invalid samples: {'; '.join(problems)}"
    )
    return table


def _concurrent_server(http: HttpChat, prompts: list[str], max_tokens: int) -> Batch:
    calls = [partial(http.stream, p, max_tokens, i) for i, p in enumerate(prompts)]
    return run_together(calls)


def _concurrent_local(engine: InProcessEngine, prompts: list[str], max_tokens: int) -> Batch:
    calls = [partial(engine.stream, p, max_tokens) for p in prompts]
    return run_together(calls)


def _record(
    into: list[Batch], run: Callable[[T, list[str], int], Batch], side: T, prompts: list[str]
) -> None:
    into.append(run(side, prompts, MAX_TOKENS))


def concurrency(options: Options, server: BodegaServer) -> Table:
    """Aggregate tokens/s at 1, 4 and 8 streams, server versus in-process."""
    spec = embedded_lm_spec()
    reps = options.reps(full=3, quick=2)
    server.load_model(
        {
            "model_path": spec.model_path,
            "model_id": PARALLEL_MODEL_ID,
            "max_concurrency": PARALLEL_SLOTS,
            "context_length": PARALLEL_CONTEXT,
        }
    )
    engine = InProcessEngine(spec.model_path, PARALLEL_CONTEXT, PARALLEL_SLOTS)
    http = HttpChat(server.base_url, PARALLEL_MODEL_ID, workers=PARALLEL_SLOTS)
    server_batches: dict[int, list[Batch]] = {n: [] for n in CONCURRENCY}
    local_batches: dict[int, list[Batch]] = {n: [] for n in CONCURRENCY}
    counter = 1000
    try:
        http.warm()
        warm_prompts = [prompt(900 + i) for i in range(PARALLEL_SLOTS)]
        _concurrent_server(http, warm_prompts, 16)
        _concurrent_local(engine, warm_prompts, 16)
        flip = False
        for _ in range(reps):
            for n in CONCURRENCY:
                prompts = [prompt(counter + i) for i in range(n)]
                counter += n
                sides: list[Callable[[], None]] = [
                    partial(_record, server_batches[n], _concurrent_server, http, prompts),
                    partial(_record, local_batches[n], _concurrent_local, engine, prompts),
                ]
                for run in reversed(sides) if flip else sides:
                    run()
                flip = not flip
    finally:
        http.close()
        engine.close()
        server.unload_model(PARALLEL_MODEL_ID)

    table = Table(
        title=(
            f"LM concurrent streams: {spec.id} with {PARALLEL_SLOTS} slots "
            f"(context {PARALLEL_CONTEXT} each), {MAX_TOKENS} tokens per stream, "
            f"{reps} reps, medians"
        ),
        columns=[
            "streams",
            "server tok/s",
            "in-proc tok/s",
            "ratio",
            "target",
            "",
            "server TTFT ms",
            "in-proc TTFT ms",
            "server min-max",
            "in-proc min-max",
        ],
    )
    problems: list[str] = []
    for n in CONCURRENCY:
        s_tps = [b.aggregate_tps for b in server_batches[n]]
        l_tps = [b.aggregate_tps for b in local_batches[n]]
        s_ttft = [s.ttft_ms for b in server_batches[n] for s in b.streams]
        l_ttft = [s.ttft_ms for b in local_batches[n] for s in b.streams]
        ratio = median(s_tps) / median(l_tps)
        table.add(
            n,
            f"{median(s_tps):.1f}",
            f"{median(l_tps):.1f}",
            f"x{ratio:.3f}",
            f">= x{DECODE_RATIO_TARGET:g}",
            verdict(ratio >= DECODE_RATIO_TARGET),
            f"{median(s_ttft):.0f}",
            f"{median(l_ttft):.0f}",
            spread(s_tps),
            spread(l_tps),
        )
        for batches in (server_batches[n], local_batches[n]):
            problems += _invalid([s for b in batches for s in b.streams])
    table.notes += [
        "Aggregate tok/s: completion tokens of all streams / (last stream end - first send); "
        "TTFT: median over every stream.",
        f"Server: the model loaded through POST /v1/admin/load-model (max_concurrency "
        f"{PARALLEL_SLOTS}); in-process: n_parallel={PARALLEL_SLOTS}, one thread per stream.",
        f"The target is the single-stream decode target, x{DECODE_RATIO_TARGET:g}.",
        f"Every stream produced exactly {MAX_TOKENS} tokens (finish_reason=length)."
        if not problems
        else f"WARNING, invalid streams: {'; '.join(problems[:5])}"
        + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""),
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
