"""Who used the CPU during a measurement: us, the server, or someone else.

On a shared machine another process's work slows whichever side of a pair it
lands on. ``CpuMeter`` measures, for one step, the CPU time of this process,
of the server's HTTP process and of its handlers, and the rest of the
machine's busy time ("foreign" CPU, in cores: 1.0 = one core fully taken by
others), so that a benchmark can set aside samples taken while the machine
was busy with something else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

import psutil

T = TypeVar("T")
_BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal")


def _machine_busy() -> float:
    times = psutil.cpu_times()
    return sum(getattr(times, name, 0.0) for name in _BUSY_FIELDS)


def _process_cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


@dataclass(frozen=True)
class CpuUsage:
    """CPU seconds used during one step, and its wall time."""

    wall: float
    own: float
    http: float
    handlers: float
    foreign: float

    @property
    def foreign_cores(self) -> float:
        """Other processes' CPU during the step, in cores."""
        return self.foreign / self.wall if self.wall > 0 else 0.0


class ProcessTree(Protocol):
    """A server whose CPU counts as ours: (main process, its children) seconds."""

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU seconds so far of the main process and of all its children."""
        ...


class CpuMeter:
    """Measures CPU use of this process, servers' process trees and the rest.

    The servers' main processes count as ``http``, their children as
    ``handlers``; a peer server measured against Bodega is one of them, so
    that its idle threads are not taken for someone else's load.
    """

    def __init__(self, *servers: ProcessTree | None) -> None:
        self._servers = [s for s in servers if s is not None]
        self._me = psutil.Process()

    def _snapshot(self) -> tuple[float, float, float, float, float]:
        http = handlers = 0.0
        for server in self._servers:
            main, children = server.cpu_seconds()
            http, handlers = http + main, handlers + children
        return time.perf_counter(), _machine_busy(), _process_cpu(self._me), http, handlers

    def measure(self, step: Callable[[], T]) -> tuple[T, CpuUsage]:
        """Run ``step`` and return its result with the CPU used meanwhile."""
        t0, busy0, own0, http0, handlers0 = self._snapshot()
        result = step()
        t1, busy1, own1, http1, handlers1 = self._snapshot()
        own, http, handlers = own1 - own0, http1 - http0, handlers1 - handlers0
        foreign = max(0.0, (busy1 - busy0) - own - http - handlers)
        return result, CpuUsage(t1 - t0, own, http, handlers, foreign)


def wait_for_quiet(meter: CpuMeter, quiet_cores: float, max_wait: float) -> float:
    """Wait until other processes use less than ``quiet_cores``; returns the seconds waited.

    Gives up after ``max_wait`` seconds: a busy machine makes noisy samples,
    but waiting for it costs less than a sample that crawls to its timeout.
    """
    started = time.perf_counter()
    while True:
        _, usage = meter.measure(partial(time.sleep, 0.3))
        waited = time.perf_counter() - started
        if usage.foreign_cores < quiet_cores or waited >= max_wait:
            return waited
        time.sleep(0.7)
