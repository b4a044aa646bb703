"""The ``mlx`` group's prompt-cache table: TTFT for a ~1,000-token system
message seen for the first time (a fresh random prefix: cold) and again with
another question (warm), with the ``cached_tokens`` the warm reply reports."""

from __future__ import annotations

import json
import random
import time

import httpx

from .registry import Options
from .report import Table, fmt, median, verdict
from .server import BodegaServer
from .timing import Stream

WARM_CACHE_TARGET = 0.25
PREFIX_WORDS = 850  # about 1,000 tokens; prefill runs ~10 tok/s here
QUICK_PREFIX_WORDS = 250
CACHE_MAX_TOKENS = 2
WORDS = (
    "river stone market window garden silver morning engine paper orange castle "
    "forest winter candle bridge harbor yellow pocket thunder valley blanket mirror "
    "planet rocket button ladder circle shadow feather marble island basket meadow "
    "violin copper lantern tunnel saddle pepper cotton hammer needle rabbit dragon "
    "anchor breeze cabinet desert ember falcon glacier hollow ivory jungle kettle "
    "lemon maple nectar oyster parrot quartz ribbon sparrow timber umbrella velvet "
    "walnut yarn zebra acorn bishop cactus dolphin eagle fossil goblet helmet"
).split()
QUESTIONS = (
    "Which word appears first?",
    "How many animals are named?",
    "Name three metals from the list.",
    "Which word is the longest?",
    "Is any fruit mentioned?",
    "What colour words appear?",
    "Pick one word and rhyme it.",
    "Which word is the shortest?",
)


def _prefix(rng: random.Random, n_words: int) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(n_words))
    return f"You are a careful assistant. Reference list {rng.randrange(10**9)}: {words}."


def _chat(client: httpx.Client, model: str, system: str, question: str, max_tokens: int) -> Stream:
    """One streamed chat with a system message, timed."""
    body = {
        "model": model,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": question},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0,
        "max_tokens": max_tokens,
    }
    result = Stream()
    result.t_send = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json=body) as reply:
        if reply.status_code != 200:
            reply.read()
            result.error = f"HTTP {reply.status_code}: {reply.text[:200]}"
        for line in reply.iter_lines() if reply.status_code == 200 else ():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            result.chat_chunk(json.loads(line[6:]), time.perf_counter())
    result.t_done = time.perf_counter()
    return result


def prompt_cache(options: Options, server: BodegaServer, model: str) -> Table:
    """TTFT on a ~1,000-token prefix seen the first time (cold) and again (warm)."""
    rng = random.Random(time.time_ns())
    reps = 1
    n_words = QUICK_PREFIX_WORDS if options.quick else PREFIX_WORDS
    rows: list[tuple[Stream, Stream]] = []
    with httpx.Client(base_url=server.base_url, timeout=300.0) as client:
        client.get("/health").raise_for_status()
        for i in range(reps):
            system = _prefix(rng, n_words)
            cold = _chat(
                client, model, system, QUESTIONS[(2 * i) % len(QUESTIONS)], CACHE_MAX_TOKENS
            )
            warm = _chat(
                client, model, system, QUESTIONS[(2 * i + 1) % len(QUESTIONS)], CACHE_MAX_TOKENS
            )
            rows.append((cold, warm))
    table = Table(
        title=(
            f"MLX prompt cache: {model}, TTFT on a {n_words}-word system prefix, "
            f"cold (new prefix) vs warm (same prefix, another question), {reps} reps"
        ),
        columns=[
            "rep",
            "prompt tok",
            "cold TTFT ms",
            "cold cached",
            "warm TTFT ms",
            "warm cached",
            "warm/cold",
            "target",
            "",
        ],
    )
    ratios = []
    for i, (cold, warm) in enumerate(rows, 1):
        ratio = warm.ttft_ms / cold.ttft_ms
        ratios.append(ratio)
        table.add(
            i,
            f"{cold.prompt_tokens}/{warm.prompt_tokens}",
            fmt(cold.ttft_ms, ".0f"),
            cold.cached_tokens,
            fmt(warm.ttft_ms, ".0f"),
            warm.cached_tokens,
            fmt(ratio, ".3f"),
            f"<= {WARM_CACHE_TARGET:g}",
            verdict(ratio <= WARM_CACHE_TARGET, ratio),
        )
    med = median(ratios)
    table.add(
        "median",
        "",
        fmt(median([cold.ttft_ms for cold, _ in rows]), ".0f"),
        "",
        fmt(median([warm.ttft_ms for _, warm in rows]), ".0f"),
        "",
        fmt(med, ".3f"),
        f"<= {WARM_CACHE_TARGET:g}",
        verdict(med <= WARM_CACHE_TARGET, med),
    )
    errors = [s.error for pair in rows for s in pair if s.error]
    table.notes += [
        f"max_tokens={CACHE_MAX_TOKENS}; cached = usage.prompt_tokens_details.cached_tokens.",
        "Each rep uses a fresh random prefix, so its cold request cannot hit the cache.",
    ]
    if errors:
        table.notes.append(f"WARNING, errors: {'; '.join(errors[:3])}")
    return table
