"""Micro-batching: coalesce concurrent requests into one forward pass.

Request threads ``submit`` jobs (each a list of rows) and block; one worker
thread owns the model's compute. When jobs come in a burst (one arrived less
than ``window`` seconds before the next), it waits until the oldest pending
job is ``window`` seconds old (or ``max_rows`` rows are pending) so that the
burst shares one forward pass; a lone job runs at once. It takes jobs up to
``max_rows`` rows, runs them in one call and hands each job its rows back.
Jobs that arrive while a batch runs have waited long enough by the time it
ends, so under load the next batch starts at once (continuous batching).
``run`` yields its outputs as they are ready (a forward pass at a time), and
a job is answered as soon as all of its rows are, not when the batch ends.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

Row = TypeVar("Row")
Out = TypeVar("Out")


class Cancelled(Exception):
    """The job was cancelled before its batch ran."""


class _Job(Generic[Row, Out]):
    __slots__ = ("arrived", "burst", "done", "error", "left", "result", "rows", "should_stop")

    def __init__(self, rows: Sequence[Row], should_stop: Callable[[], bool]) -> None:
        self.rows = rows
        self.should_stop = should_stop
        self.arrived = time.monotonic()
        self.burst = False  # another job arrived shortly before this one
        self.done = threading.Event()
        self.result: list[Out | None] = []
        self.left = 0  # rows of the running batch still to come
        self.error: BaseException | None = None


class MicroBatcher(Generic[Row, Out]):
    """Runs ``run(rows)`` on batched rows; it yields ``(row index, output)``
    once for every row, in any order."""

    def __init__(
        self,
        run: Callable[[list[Row]], Iterable[tuple[int, Out]]],
        *,
        window: float,
        max_rows: int,
        name: str = "batcher",
    ) -> None:
        self._run = run
        self._window = max(0.0, window)
        self._max_rows = max(1, max_rows)
        self._cond = threading.Condition()
        self._pending: deque[_Job[Row, Out]] = deque()
        self._pending_rows = 0
        self._closed = False
        self._last_arrival = float("-inf")
        self.batches = 0
        self.rows_run = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, rows: Sequence[Row], should_stop: Callable[[], bool]) -> list[Out]:
        """Block until ``rows`` were run; raise ``Cancelled`` if the job was
        dropped, or whatever ``run`` raised for its batch."""
        if not rows:
            return []
        job: _Job[Row, Out] = _Job(rows, should_stop)
        with self._cond:
            if self._closed:
                raise Cancelled("the batcher is closed")
            job.burst = job.arrived - self._last_arrival < self._window
            self._last_arrival = job.arrived
            self._pending.append(job)
            self._pending_rows += len(rows)
            self._cond.notify_all()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return [out for out in job.result if out is not None]

    def close(self) -> None:
        """Stop the worker; pending jobs are cancelled."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _take(self) -> list[_Job[Row, Out]] | None:
        with self._cond:
            while True:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    for job in self._pending:
                        job.error = Cancelled("the batcher is closed")
                        job.done.set()
                    self._pending.clear()
                    return None
                lone = len(self._pending) == 1 and not self._pending[0].burst
                deadline = self._pending[0].arrived + (0.0 if lone else self._window)
                while self._pending_rows < self._max_rows and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch: list[_Job[Row, Out]] = []
                rows = 0
                while self._pending and (
                    not batch or rows + len(self._pending[0].rows) <= self._max_rows
                ):
                    job = self._pending.popleft()
                    self._pending_rows -= len(job.rows)
                    if job.should_stop():
                        job.error = Cancelled("cancelled")
                        job.done.set()
                        continue
                    batch.append(job)
                    rows += len(job.rows)
                if batch:
                    return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            rows: list[Row] = []
            owners: list[tuple[_Job[Row, Out], int]] = []  # per row: its job, its place
            for job in batch:
                job.result = [None] * len(job.rows)
                job.left = len(job.rows)
                owners.extend((job, i) for i in range(len(job.rows)))
                rows.extend(job.rows)
            try:
                for index, out in self._run(rows):
                    job, place = owners[index]
                    job.result[place] = out
                    job.left -= 1
                    if not job.left:
                        job.done.set()
            except BaseException as exc:
                for job in batch:
                    if job.left:
                        job.error = exc
                        job.done.set()
                continue
            self.batches += 1
            self.rows_run += len(rows)
