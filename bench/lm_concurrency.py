"""Language models, concurrent streams: aggregate tokens/s with 1, 4 and 8
streams, on a model loaded through the admin API with ``max_concurrency: 8``
and on an in-process llama.cpp server with ``n_parallel = 8``, one thread per
stream, taken as pairs (``pairs``)."""

from __future__ import annotations

from functools import partial

import msgspec

from bodega.settings import EMBEDDED_LM_ID, ModelSpec, embedded_lm_spec

from .client import HttpChat
from .cpu import CpuMeter
from .engines import InProcessEngine
from .lm_sides import (
    DECODE_RATIO_TARGET,
    MAX_TOKENS,
    WARMUP_TIMEOUT,
    local_sample,
    prompt,
    ratios,
    server_sample,
)
from .pairs import Pair, PairRunner, usable
from .registry import Options
from .report import Table, fmt, median, spread, verdict
from .server import BodegaServer

CONCURRENCY = (1, 4, 8)
PARALLEL_MODEL_ID = f"{EMBEDDED_LM_ID}-x8"
PARALLEL_SLOTS = 8
PARALLEL_CONTEXT = 2048


def concurrency(options: Options, server: BodegaServer) -> Table:
    """Aggregate tokens/s at 1, 4 and 8 streams, server versus in-process."""
    spec = embedded_lm_spec()
    want = options.reps(full=5, quick=2)
    budget = 45.0 if options.quick else 150.0
    parallel = ModelSpec(
        model_path=spec.model_path,
        model_id=PARALLEL_MODEL_ID,
        max_concurrency=PARALLEL_SLOTS,
        context_length=PARALLEL_CONTEXT,
    )
    server.load_model(msgspec.to_builtins(parallel))
    engine = InProcessEngine(parallel)
    http = HttpChat(server.base_url, PARALLEL_MODEL_ID, workers=PARALLEL_SLOTS)
    meter = CpuMeter(server)
    pairs: dict[int, list[Pair]] = {n: [] for n in CONCURRENCY}
    runner = PairRunner(meter, budget)
    try:
        http.warm()
        warm_prompts = [prompt(900 + i) for i in range(PARALLEL_SLOTS)]
        server_sample(meter, server, http, warm_prompts, 16, WARMUP_TIMEOUT)
        local_sample(meter, engine, warm_prompts, 16, WARMUP_TIMEOUT)
        runner.take_levels(
            pairs,
            want,
            MAX_TOKENS,
            (partial(server_sample, meter, server, http), partial(local_sample, meter, engine)),
            prompt=prompt,
            first_prompt=1000,
            timeout=lambda n: 5.0 + 2.0 * n,
        )
    finally:
        http.close()
        engine.close()
        server.unload_model(PARALLEL_MODEL_ID)

    table = Table(
        title=(
            f"LM concurrent streams: {spec.id} with {PARALLEL_SLOTS} slots "
            f"(context {PARALLEL_CONTEXT} each), {MAX_TOKENS} tokens per stream, medians"
        ),
        columns=[
            "streams",
            "pairs",
            "server tok/s",
            "in-proc tok/s",
            "paired ratio",
            "target",
            "",
            "server TTFT ms",
            "in-proc TTFT ms",
            "server min-max",
            "in-proc min-max",
        ],
    )
    notes: list[str] = []
    problems: list[str] = []
    for n in CONCURRENCY:
        used, note = usable(pairs[n], MAX_TOKENS)
        notes.append(f"{n} stream(s): {note}.")
        problems += [problem for p in pairs[n] for problem in p.problems(MAX_TOKENS)]
        s_tps = [p.server.batch.aggregate_tps for p in used]
        l_tps = [p.local.batch.aggregate_tps for p in used]
        ratio = median(ratios(s_tps, l_tps))
        table.add(
            n,
            len(used),
            fmt(median(s_tps), ".1f"),
            fmt(median(l_tps), ".1f"),
            fmt(ratio, ".3f", prefix="x"),
            f">= x{DECODE_RATIO_TARGET:g}",
            verdict(ratio >= DECODE_RATIO_TARGET, ratio),
            fmt(median([s.ttft_ms for p in used for s in p.server.batch.streams]), ".0f"),
            fmt(median([s.ttft_ms for p in used for s in p.local.batch.streams]), ".0f"),
            spread(s_tps),
            spread(l_tps),
        )
    table.notes += [
        "Aggregate tok/s: completion tokens of all streams / (last stream end - first send); "
        "TTFT: median over every stream.",
        f"Server: the model loaded through POST /v1/admin/load-model (max_concurrency "
        f"{PARALLEL_SLOTS}); in-process: n_parallel={PARALLEL_SLOTS}, one thread per stream.",
        f"Target: the single-stream decode target, x{DECODE_RATIO_TARGET:g}. "
        f"{runner.waited:.0f} s spent waiting for a quiet machine.",
        *notes,
        f"Every stream produced exactly {MAX_TOKENS} tokens (finish_reason=length)."
        if not problems
        else f"WARNING, invalid streams: {'; '.join(problems[:5])}"
        + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""),
    ]
    return table
