"""The two sides of the language-model benchmarks: streams through Bodega's
HTTP server and through llama.cpp in-process, on the same prompts.

Prompt cache: every stream gets its own prompt (a counter and a topic at the
start of the user message), and both sides get the same prompts in the same
order, so each side's slots hold the same history and only the shared chat
template prefix is ever reused from the cache, alike on both sides.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from functools import partial

from .client import HttpChat
from .cpu import CpuMeter
from .engines import InProcessEngine
from .pairs import Sample
from .server import BodegaServer
from .timing import run_together

MAX_TOKENS = 128
DECODE_RATIO_TARGET = 0.95
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


def engine_timings_from_log(server: BodegaServer, offset: int) -> tuple[float | None, float | None]:
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


def server_sample(
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
    tps, prompt_ms = engine_timings_from_log(server, offset)
    return Sample(batch=batch, cpu=cpu, engine_tps=tps, engine_prompt_ms=prompt_ms)


def local_sample(
    meter: CpuMeter, engine: InProcessEngine, prompts: list[str], max_tokens: int, timeout: float
) -> Sample:
    calls = [partial(engine.stream, p, max_tokens, timeout) for p in prompts]
    batch, cpu = meter.measure(partial(run_together, calls))
    first = batch.streams[0]
    return Sample(
        batch=batch, cpu=cpu, engine_tps=first.engine_tps, engine_prompt_ms=first.engine_prompt_ms
    )


def ratios(server: Sequence[float], local: Sequence[float]) -> list[float]:
    """Server / in-process, pair by pair."""
    return [s / loc for s, loc in zip(server, local, strict=True)]
