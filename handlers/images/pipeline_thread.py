"""One thread that owns a pipeline: every call into it runs there, in turn.

MLX must be driven from one thread (mflux), and one image at a time is what
a diffusion pipeline does anyway; requests hand their work to this thread
and wait for it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class PipelineThread:
    """Runs callables on one daemon thread, in order."""

    def __init__(self, name: str) -> None:
        self._inbox: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._inbox.get()) is not None:
            work, future = item
            try:
                future.set_result(work())
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)

    def call(self, work: Callable[[], T]) -> T:
        """Run ``work`` on the thread and return its result (or raise its error)."""
        future: Future[T] = Future()
        self._inbox.put((work, future))
        return future.result()

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the work in hand."""
        self._inbox.put(None)
        self._thread.join(timeout)
