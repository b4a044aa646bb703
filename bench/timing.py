"""Timings of one streamed generation and of a batch of concurrent ones."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stream:
    """When one stream was sent, produced its first and last text, and ended.

    Times are ``time.perf_counter()`` seconds. ``completion_tokens`` comes from
    the engine's usage, so decode speed counts tokens, not text events.
    """

    t_send: float = 0.0
    t_first: float | None = None
    t_last: float | None = None
    t_done: float = 0.0
    content_events: int = 0
    completion_tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    finish_reason: str | None = None
    engine_tps: float | None = None
    engine_prompt_ms: float | None = None
    error: str | None = None

    def chat_chunk(self, chunk: dict[str, Any], now: float) -> None:
        """Fold one decoded ``chat.completion.chunk`` (or error event) in."""
        if chunk.get("error"):
            self.error = str(chunk["error"])
            return
        usage = chunk.get("usage")
        if usage:
            self.prompt_tokens = int(usage.get("prompt_tokens", 0))
            self.completion_tokens = int(usage.get("completion_tokens", 0))
            details = usage.get("prompt_tokens_details") or {}
            self.cached_tokens = int(details.get("cached_tokens", 0))
        for choice in chunk.get("choices") or ():
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
            if (choice.get("delta") or {}).get("content"):
                self.content_event(now)

    def content_event(self, now: float) -> None:
        """Record one chunk that carried non-empty text."""
        if self.t_first is None:
            self.t_first = now
        self.t_last = now
        self.content_events += 1

    @property
    def ttft_ms(self) -> float:
        """Milliseconds from sending the request to the first text."""
        if self.t_first is None:
            return float("nan")
        return (self.t_first - self.t_send) * 1e3

    @property
    def decode_tps(self) -> float:
        """(completion tokens - 1) / (last text - first text)."""
        if self.t_first is None or self.t_last is None or self.t_last <= self.t_first:
            return float("nan")
        return (self.completion_tokens - 1) / (self.t_last - self.t_first)

    def check(self, max_tokens: int) -> str | None:
        """Why this stream is not a valid sample, or None."""
        if self.error:
            return f"error: {self.error}"
        if self.t_first is None:
            return "no text"
        if self.completion_tokens != max_tokens or self.finish_reason != "length":
            return f"{self.completion_tokens} tokens, finish_reason={self.finish_reason}"
        return None


@dataclass
class Batch:
    """Several streams started together."""

    streams: list[Stream] = field(default_factory=list)

    @property
    def wall(self) -> float:
        """Seconds from the first send to the last stream's end."""
        return max(s.t_done for s in self.streams) - min(s.t_send for s in self.streams)

    @property
    def tokens(self) -> int:
        """Completion tokens over all streams."""
        return sum(s.completion_tokens for s in self.streams)

    @property
    def aggregate_tps(self) -> float:
        """Completion tokens of all streams per second of wall time."""
        return self.tokens / self.wall if self.wall > 0 else float("nan")


def run_together(calls: Sequence[Callable[[], Stream]]) -> Batch:
    """Run ``calls`` on one thread each, released at once by a barrier."""
    barrier = threading.Barrier(len(calls))
    results: list[Stream | BaseException | None] = [None] * len(calls)

    def work(i: int) -> None:
        try:
            barrier.wait()
            results[i] = calls[i]()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    batch = Batch()
    for result in results:
        if isinstance(result, BaseException):
            raise result
        assert result is not None
        batch.streams.append(result)
    return batch
