"""The in-process side of the ``mlx`` group: ``mlx_lm.stream_generate`` in a
worker subprocess started with the MLX handler's environment
(``handler_env("mlx")``: the OpenBLAS ``LD_PRELOAD``), answering one JSON line
per request with its timings: ``python -m bench.mlx_worker FOLDER``."""

from __future__ import annotations

import json
import sys
import time
from functools import partial
from pathlib import Path
from typing import IO, Any

import psutil

from bodega.registry.handler_env import handler_env

from .cpu import CpuMeter, CpuUsage
from .line_worker import LineWorker
from .pairs import Sample
from .timing import Batch, Stream


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
        self.preload = handler_env("mlx").get("LD_PRELOAD", "")
        self._worker = LineWorker("bench.mlx_worker", [str(folder)], "mlx", log)
        self._ps = psutil.Process(self._worker.pid)

    def cpu_seconds(self) -> float:
        """The worker's user + system CPU so far."""
        times = self._ps.cpu_times()
        return times.user + times.system

    def stream(self, text: str, max_tokens: int) -> tuple[Stream, dict[str, Any]]:
        """One greedy generation, timed as the HTTP side times its stream."""
        t_send = time.perf_counter()
        reply = self._worker.ask(json.dumps({"prompt": text, "max_tokens": max_tokens}))
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
        self._worker.close()


def local_sample(meter: CpuMeter, worker: InProcessMlx, text: str, max_tokens: int) -> Sample:
    """One in-process stream, with the worker's CPU counted as ours."""
    before = worker.cpu_seconds()
    (stream, _), cpu = meter.measure(partial(worker.stream, text, max_tokens))
    used = worker.cpu_seconds() - before
    # The worker is ours: count it as our CPU, not as foreign load.
    cpu = CpuUsage(cpu.wall, cpu.own + used, cpu.http, cpu.handlers, max(0.0, cpu.foreign - used))
    return Sample(batch=Batch([stream]), cpu=cpu, engine_tps=stream.engine_tps)


if __name__ == "__main__":
    worker_main(sys.argv[1])
