"""Admission per model: ``max_concurrency`` running, ``queue_size`` waiting.

A request beyond both is refused at once (429 with Retry-After); one that
waits longer than ``queue_timeout`` gets a 504. A freed slot goes to the
waiter with the highest effective priority: its own (``priority.py``, higher
first) plus one level per ``aging`` seconds it has waited, so a low-priority
request is never starved; equal ones are served first in, first out. A waiter
whose client goes away simply leaves the queue.
"""

from __future__ import annotations

import itertools
import math
from types import TracebackType

import msgspec
import trio

from bodega.errors import QueueFull, QueueTimeout

from .priority import NORMAL

DEFAULT_AGING = 10.0  # seconds of waiting per priority level gained


class QueueStats(msgspec.Struct):
    """What ``GET /v1/queue/stats`` reports for one model."""

    max_concurrency: int
    queue_size: int
    queued: int = 0
    running: int = 0
    completed: int = 0
    rejected: int = 0
    timed_out: int = 0
    # Waiting requests by the priority they asked for ("0".."9").
    queued_by_priority: dict[str, int] = {}


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


class _Waiter:
    """One queued request; ``granted`` once a slot was handed to it."""

    __slots__ = ("arrived", "event", "granted", "priority", "seq")

    def __init__(self, priority: int, arrived: float, seq: int) -> None:
        self.priority, self.arrived, self.seq = priority, arrived, seq
        self.event = trio.Event()
        self.granted = False


class Admission:
    """Bounds the requests one model runs and queues, and orders the queue."""

    def __init__(
        self,
        max_concurrency: int,
        queue_size: int,
        queue_timeout: float,
        aging: float = DEFAULT_AGING,
    ) -> None:
        self._free = max_concurrency
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self.queue_timeout = queue_timeout
        self.aging = aging
        self.stats = QueueStats(max_concurrency=max_concurrency, queue_size=queue_size)
        self._hold_seconds = 1.0  # running mean of how long a slot is held
        self._owed = 0  # slots to keep when released (``resize`` to fewer)

    def effective(self, waiter: _Waiter, now: float) -> float:
        """A waiter's priority now: its own plus one level per ``aging`` seconds."""
        aged = math.floor((now - waiter.arrived) / self.aging) if self.aging > 0 else 0
        return waiter.priority + aged

    async def acquire(self, priority: int = NORMAL) -> Slot:
        """Wait for a place to run, or raise QueueFull / QueueTimeout."""
        stats = self.stats
        if self._free > 0 and not self._waiters:
            self._free -= 1
            stats.running += 1
            return Slot(self)
        if stats.queued >= stats.queue_size:
            stats.rejected += 1
            raise QueueFull(
                f"The model is busy: {stats.running} requests running and "
                f"{stats.queued} queued (queue_size {stats.queue_size}). Retry later.",
                retry_after=max(1, math.ceil(self._hold_seconds)),
            )
        waiter = _Waiter(priority, trio.current_time(), next(self._seq))
        self._enqueue(waiter)
        try:
            with trio.move_on_after(self.queue_timeout):
                await waiter.event.wait()
        except BaseException:
            if waiter.granted:  # granted as the caller left: pass it on
                self.stats.running -= 1
                self._give_back()
            else:
                self._dequeue(waiter)
            raise
        if not waiter.granted:
            self._dequeue(waiter)
            stats.timed_out += 1
            raise QueueTimeout(
                f"The request waited {self.queue_timeout:g} s in the model's queue "
                "(queue_timeout) without getting a slot."
            )
        return Slot(self)

    def _enqueue(self, waiter: _Waiter) -> None:
        self._waiters.append(waiter)
        self.stats.queued += 1
        key = str(waiter.priority)
        by = self.stats.queued_by_priority
        by[key] = by.get(key, 0) + 1

    def _dequeue(self, waiter: _Waiter) -> None:
        self._waiters.remove(waiter)
        self.stats.queued -= 1
        key = str(waiter.priority)
        by = self.stats.queued_by_priority
        by[key] -= 1
        if by[key] == 0:
            del by[key]

    def _grant(self) -> bool:
        """Hand one slot to the best waiter; False when none waits."""
        if not self._waiters:
            return False
        now = trio.current_time()
        best = max(self._waiters, key=lambda w: (self.effective(w, now), -w.seq))
        self._dequeue(best)
        best.granted = True
        self.stats.running += 1
        best.event.set()
        return True

    def resize(self, max_concurrency: int, queue_size: int, queue_timeout: float) -> None:
        """New limits (a reload); requests waiting keep their place. Fewer
        slots are taken back as running requests end."""
        change = max_concurrency - self.stats.max_concurrency
        self.stats.max_concurrency, self.stats.queue_size = max_concurrency, queue_size
        self.queue_timeout = queue_timeout
        paid = min(max(change, 0), self._owed)  # more slots: first cancel what is owed
        self._owed -= paid
        for _ in range(change - paid):
            if not self._grant():
                self._free += 1
        for _ in range(-change):
            if self._free > 0:
                self._free -= 1
            else:
                self._owed += 1

    def _release(self, held_seconds: float) -> None:
        self._hold_seconds = 0.8 * self._hold_seconds + 0.2 * held_seconds
        self.stats.running -= 1
        self.stats.completed += 1
        self._give_back()

    def _give_back(self) -> None:
        if self._owed > 0:
            self._owed -= 1  # a slot given up by a resize
        elif not self._grant():
            self._free += 1
