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

Noise: a pair counts as quiet when other processes used less than
``QUIET_CORES`` of the machine during both of its samples; figures come from
quiet pairs (from all pairs, flagged, when fewer than two were quiet), and
pairs are retried within a time budget until enough are quiet.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import msgspec

from bodega.settings import EMBEDDED_LM_ID, ModelSpec, embedded_lm_spec

from .client import HttpChat
from .cpu import CpuMeter, CpuUsage, wait_for_quiet
from .engines import InProcessEngine, native_stderr_to
from .registry import Options, register
from .report import Table, fmt, median, spread, verdict
from .server import BodegaServer
from .timing import Batch, Stream, run_together

MAX_TOKENS = 128
CONCURRENCY = (1, 4, 8)
PARALLEL_MODEL_ID = f"{EMBEDDED_LM_ID}-x8"
PARALLEL_SLOTS = 8
PARALLEL_CONTEXT = 2048
DECODE_RATIO_TARGET = 0.95
TTFT_TARGET_MS = 5.0
QUIET_CORES = 0.25
GATE_WAIT = 8.0
WARMUP_TIMEOUT = 20.0
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
_EVAL_LINE = re.compile(r"\|\s+eval time =\s+([\d.]+) ms /\s+(\d+) tokens")
_PROMPT_LINE = re.compile(r"\|\s+prompt eval time =\s+([\d.]+) ms")


def prompt(i: int) -> str:
    """The ``i``-th prompt: unique from its first tokens, asking for long text."""
    topic = TOPICS[i % len(TOPICS)]
    return (
        f"Request {i}. Write a long, detailed story about {topic}. "
        "Describe every scene at length, with dialogue."
    )


# --- pairs -----------------------------------------------------------------


@dataclass
class Sample:
    """One side's streams in one pair, with the CPU used meanwhile."""

    batch: Batch
    cpu: CpuUsage
    engine_tps: float | None = None
    engine_prompt_ms: float | None = None

    @property
    def first(self) -> Stream:
        """The (only) stream of a single-stream sample."""
        return self.batch.streams[0]


@dataclass
class Pair:
    """A server sample and an in-process sample taken back to back."""

    server: Sample
    local: Sample

    @property
    def foreign_cores(self) -> float:
        """The larger foreign CPU load of the two samples."""
        return max(self.server.cpu.foreign_cores, self.local.cpu.foreign_cores)

    @property
    def quiet(self) -> bool:
        """Whether the machine was quiet during both samples."""
        return self.foreign_cores < QUIET_CORES

    def problems(self, max_tokens: int) -> list[str]:
        """Why some stream of this pair is not a valid sample."""
        streams = self.server.batch.streams + self.local.batch.streams
        return [p for s in streams if (p := s.check(max_tokens)) is not None]


def take_pair(
    server_side: Callable[[], Sample], local_side: Callable[[], Sample], flip: bool
) -> Pair:
    """Run both sides back to back, in-process first when ``flip``."""
    if flip:
        local = local_side()
        return Pair(server=server_side(), local=local)
    server = server_side()
    return Pair(server=server, local=local_side())


def usable(pairs: Sequence[Pair], max_tokens: int) -> tuple[list[Pair], str]:
    """The pairs figures come from, and a note saying which and why."""
    valid = [p for p in pairs if not p.problems(max_tokens)]
    quiet = [p for p in valid if p.quiet]
    noisy = len(valid) - len(quiet)
    invalid = len(pairs) - len(valid)
    loads = ", ".join(f"{p.foreign_cores:.2f}" for p in pairs)
    detail = f"others' CPU per pair, cores: {loads or '-'}"
    extra = f"; {invalid} invalid pair(s) dropped" if invalid else ""
    if len(quiet) >= 2 or (quiet and len(valid) == len(quiet)):
        return quiet, f"{len(quiet)} quiet pairs used, {noisy} noisy set aside{extra} ({detail})"
    return valid, f"WARNING: too few quiet pairs, all {len(valid)} valid used{extra} ({detail})"


class PairRunner:
    """Takes pairs within a time budget, each after waiting for a quiet machine."""

    def __init__(self, meter: CpuMeter, budget: float) -> None:
        self.meter = meter
        self.budget = budget
        self.waited = 0.0
        self._deadline: float | None = None
        self._flip = False

    @property
    def deadline(self) -> float:
        """When the budget runs out; the clock starts at the first question."""
        if self._deadline is None:
            self._deadline = time.perf_counter() + self.budget
        return self._deadline

    def want_more(self, pairs: Sequence[Pair], want: int, max_tokens: int) -> bool:
        """Whether another pair is worth taking: too few good ones, and time left."""
        deadline = self.deadline
        good = sum(1 for p in pairs if p.quiet and not p.problems(max_tokens))
        if good >= want:
            return False
        if not pairs:
            return True
        return time.perf_counter() < deadline and len(pairs) < 3 * want

    def take(self, server_side: Callable[[], Sample], local_side: Callable[[], Sample]) -> Pair:
        """Wait for quiet (bounded), then take one pair; the order flips every pair."""
        left = max(0.0, self.deadline - time.perf_counter())
        self.waited += wait_for_quiet(self.meter, QUIET_CORES, min(GATE_WAIT, left))
        flip, self._flip = self._flip, not self._flip
        return take_pair(server_side, local_side, flip)


def sample_timeout(pairs: Sequence[Pair], max_tokens: int, default: float) -> float:
    """4x the wall time of earlier good samples (at least 5 s), else ``default``."""
    walls = [
        max(p.server.batch.wall, p.local.batch.wall)
        for p in pairs
        if p.quiet and not p.problems(max_tokens)
    ]
    return max(5.0, 4 * median(walls)) if walls else default


# --- sides -----------------------------------------------------------------


def _engine_timings_from_log(
    server: BodegaServer, offset: int
) -> tuple[float | None, float | None]:
    """llama.cpp's own (decode tok/s, prompt eval ms) for the request logged after ``offset``."""
    for _ in range(25):
        text = server.log_since(offset)
        found = _EVAL_LINE.findall(text)
        if found:
            ms, tokens = found[-1]
            tps = int(tokens) / (float(ms) / 1e3) if float(ms) > 0 else None
            prompts = _PROMPT_LINE.findall(text)
            return tps, float(prompts[-1]) if prompts else None
        time.sleep(0.02)
    return None, None


def _server_sample(
    meter: CpuMeter,
    server: BodegaServer,
    http: HttpChat,
    prompts: list[str],
    max_tokens: int,
    timeout: float,
) -> Sample:
    offset = server.log_size()
    calls = [partial(http.stream, p, max_tokens, i, timeout) for i, p in enumerate(prompts)]
    batch, cpu = meter.measure(partial(run_together, calls))
    if len(prompts) != 1:
        return Sample(batch=batch, cpu=cpu)
    tps, prompt_ms = _engine_timings_from_log(server, offset)
    return Sample(batch=batch, cpu=cpu, engine_tps=tps, engine_prompt_ms=prompt_ms)


def _local_sample(
    meter: CpuMeter, engine: InProcessEngine, prompts: list[str], max_tokens: int, timeout: float
) -> Sample:
    calls = [partial(engine.stream, p, max_tokens, timeout) for p in prompts]
    batch, cpu = meter.measure(partial(run_together, calls))
    first = batch.streams[0]
    return Sample(
        batch=batch, cpu=cpu, engine_tps=first.engine_tps, engine_prompt_ms=first.engine_prompt_ms
    )


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
                partial(_server_sample, meter, server, http, prompts, max_tokens, timeout),
                partial(_local_sample, meter, engine, prompts, max_tokens, timeout),
            )
        )
    return pairs


def _diffs(server: Sequence[float], local: Sequence[float]) -> list[float]:
    return [s - loc for s, loc in zip(server, local, strict=True)]


def _ratios(server: Sequence[float], local: Sequence[float]) -> list[float]:
    return [s / loc for s, loc in zip(server, local, strict=True)]


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
        _server_sample(meter, server, http, [prompt(0)], MAX_TOKENS, WARMUP_TIMEOUT)
        _local_sample(meter, engine, [prompt(0)], MAX_TOKENS, WARMUP_TIMEOUT)
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
    ratio = median(_ratios(s_tps, l_tps))
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
        fmt(median(_ratios(s_eng, l_eng)), ".3f", prefix="x"),
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


# --- 2. concurrent streams -------------------------------------------------


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
    counter = 1000
    runner = PairRunner(meter, budget)
    try:
        http.warm()
        warm_prompts = [prompt(900 + i) for i in range(PARALLEL_SLOTS)]
        _server_sample(meter, server, http, warm_prompts, 16, WARMUP_TIMEOUT)
        _local_sample(meter, engine, warm_prompts, 16, WARMUP_TIMEOUT)
        while levels := [n for n in CONCURRENCY if runner.want_more(pairs[n], want, MAX_TOKENS)]:
            for n in levels:
                prompts = [prompt(counter + i) for i in range(n)]
                counter += n
                timeout = sample_timeout(pairs[n], MAX_TOKENS, default=5.0 + 2.0 * n)
                pairs[n].append(
                    runner.take(
                        partial(_server_sample, meter, server, http, prompts, MAX_TOKENS, timeout),
                        partial(_local_sample, meter, engine, prompts, MAX_TOKENS, timeout),
                    )
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
        ratio = median(_ratios(s_tps, l_tps))
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


@register("lm", "language models: embedded SmolLM2 GGUF on llama.cpp", needs=("xllamacpp",))
def run(options: Options) -> list[Table]:
    """Both language-model benchmarks on one server started for them."""
    log_dir = Path(options.log_dir)
    with (
        native_stderr_to(log_dir / "lm-inprocess.log"),
        BodegaServer(log_dir / "lm-server.log") as server,
    ):
        return [single_stream(options, server), concurrency(options, server)]
