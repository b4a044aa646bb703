"""Admission per model: ``max_concurrency`` running, ``queue_size`` waiting.

A request beyond both is refused at once (429 with Retry-After); one that
waits longer than ``queue_timeout`` gets a 504. Waiters are served first in,
first out, and a waiter whose client goes away simply leaves the queue.
"""

from __future__ import annotations

import math
from types import TracebackType

import msgspec
import trio

from bodega.errors import QueueFull, QueueTimeout


class QueueStats(msgspec.Struct):
    """What ``GET /v1/queue/stats`` reports for one model."""

    max_concurrency: int
    queue_size: int
    queued: int = 0
    running: int = 0
    completed: int = 0
    rejected: int = 0
    timed_out: int = 0


class Slot:
    """A held place to run; released exactly once, however the holder ends."""

    def __init__(self, admission: Admission) -> None:
        self._admission: Admission | None = admission
        self._started = trio.current_time()

    def release(self) -> None:
        """Give the place back (idempotent)."""
        if self._admission is not None:
            admission, self._admission = self._admission, None
            admission._release(trio.current_time() - self._started)

    async def __aenter__(self) -> Slot:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class Admission:
    """Bounds the requests one model runs and queues."""

    def __init__(self, max_concurrency: int, queue_size: int, queue_timeout: float) -> None:
        self._slots = trio.Semaphore(max_concurrency)
        self.queue_timeout = queue_timeout
        self.stats = QueueStats(max_concurrency=max_concurrency, queue_size=queue_size)
        self._hold_seconds = 1.0  # running mean of how long a slot is held
        self._owed = 0  # slots to keep when released (``resize`` to fewer)

    async def acquire(self) -> Slot:
        """Wait for a place to run, or raise QueueFull / QueueTimeout."""
        stats = self.stats
        if self._slots.value == 0 and stats.queued >= stats.queue_size:
            stats.rejected += 1
            raise QueueFull(
                f"The model is busy: {stats.running} requests running and "
                f"{stats.queued} queued (queue_size {stats.queue_size}). Retry later.",
                retry_after=max(1, math.ceil(self._hold_seconds)),
            )
        stats.queued += 1
        try:
            with trio.move_on_after(self.queue_timeout) as scope:
                await self._slots.acquire()
        finally:
            stats.queued -= 1
        if scope.cancelled_caught:
            stats.timed_out += 1
            raise QueueTimeout(
                f"The request waited {self.queue_timeout:g} s in the model's queue "
                "(queue_timeout) without getting a slot."
            )
        stats.running += 1
        return Slot(self)

    def resize(self, max_concurrency: int, queue_size: int, queue_timeout: float) -> None:
        """New limits (a reload); requests waiting keep their place. Fewer
        slots are taken back as running requests end."""
        change = max_concurrency - self.stats.max_concurrency
        self.stats.max_concurrency, self.stats.queue_size = max_concurrency, queue_size
        self.queue_timeout = queue_timeout
        paid = min(max(change, 0), self._owed)  # more slots: first cancel what is owed
        self._owed -= paid
        for _ in range(change - paid):
            self._slots.release()
        for _ in range(-change):
            if self._slots.value > 0:
                self._slots.acquire_nowait()
            else:
                self._owed += 1

    def _release(self, held_seconds: float) -> None:
        self._hold_seconds = 0.8 * self._hold_seconds + 0.2 * held_seconds
        self.stats.running -= 1
        self.stats.completed += 1
        if self._owed > 0:
            self._owed -= 1  # a slot given up by a resize
        else:
            self._slots.release()
