"""Pairs: one Bodega sample and one sample of what it is compared with, taken
back to back, the order flipping every pair, each after waiting (bounded) for
a quiet machine, so that a noisy machine slows both sides alike. A pair is
quiet when other processes used less than ``QUIET_CORES`` of the machine
during both of its samples; figures come from quiet pairs (from all valid
pairs, flagged, when fewer than two were quiet)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from .cpu import CpuMeter, CpuUsage, wait_for_quiet
from .report import median
from .timing import Batch, Stream

QUIET_CORES = 0.25
GATE_WAIT = 8.0


@dataclass
class Sample:
    """One side's streams in one pair, with the CPU used meanwhile."""

    batch: Batch
    cpu: CpuUsage
    engine_tps: float | None = None
    engine_prompt_ms: float | None = None

    @property
    def first(self) -> Stream:
        """The (only) stream of a single-stream sample."""
        return self.batch.streams[0]


@dataclass
class Pair:
    """A server sample and an in-process sample taken back to back."""

    server: Sample
    local: Sample

    @property
    def foreign_cores(self) -> float:
        """The larger foreign CPU load of the two samples."""
        return max(self.server.cpu.foreign_cores, self.local.cpu.foreign_cores)

    @property
    def quiet(self) -> bool:
        """Whether the machine was quiet during both samples."""
        return self.foreign_cores < QUIET_CORES

    def problems(self, max_tokens: int) -> list[str]:
        """Why some stream of this pair is not a valid sample."""
        streams = self.server.batch.streams + self.local.batch.streams
        return [p for s in streams if (p := s.check(max_tokens)) is not None]


def take_pair(
    server_side: Callable[[], Sample], local_side: Callable[[], Sample], flip: bool
) -> Pair:
    """Run both sides back to back, in-process first when ``flip``."""
    if flip:
        local = local_side()
        return Pair(server=server_side(), local=local)
    server = server_side()
    return Pair(server=server, local=local_side())


def usable(pairs: Sequence[Pair], max_tokens: int) -> tuple[list[Pair], str]:
    """The pairs figures come from, and a note saying which and why."""
    valid = [p for p in pairs if not p.problems(max_tokens)]
    quiet = [p for p in valid if p.quiet]
    noisy = len(valid) - len(quiet)
    invalid = len(pairs) - len(valid)
    loads = ", ".join(f"{p.foreign_cores:.2f}" for p in pairs)
    detail = f"others' CPU per pair, cores: {loads or '-'}"
    extra = f"; {invalid} invalid pair(s) dropped" if invalid else ""
    if len(quiet) >= 2 or (quiet and len(valid) == len(quiet)):
        return quiet, f"{len(quiet)} quiet pairs used, {noisy} noisy set aside{extra} ({detail})"
    return valid, f"WARNING: too few quiet pairs, all {len(valid)} valid used{extra} ({detail})"


# One side's sample of ``prompts`` streamed together: (prompts, max_tokens, timeout).
SampleStep = Callable[[list[str], int, float], Sample]


class PairRunner:
    """Takes pairs within a time budget, each after waiting for a quiet machine."""

    def __init__(self, meter: CpuMeter, budget: float) -> None:
        self.meter = meter
        self.budget = budget
        self.waited = 0.0
        self._deadline: float | None = None
        self._flip = False

    @property
    def deadline(self) -> float:
        """When the budget runs out; the clock starts at the first question."""
        if self._deadline is None:
            self._deadline = time.perf_counter() + self.budget
        return self._deadline

    def want_more(self, pairs: Sequence[Pair], want: int, max_tokens: int) -> bool:
        """Whether another pair is worth taking: too few good ones, and time left."""
        deadline = self.deadline
        good = sum(1 for p in pairs if p.quiet and not p.problems(max_tokens))
        if good >= want:
            return False
        if not pairs:
            return True
        return time.perf_counter() < deadline and len(pairs) < 3 * want

    def take(self, server_side: Callable[[], Sample], local_side: Callable[[], Sample]) -> Pair:
        """Wait for quiet (bounded), then take one pair; the order flips every pair."""
        left = max(0.0, self.deadline - time.perf_counter())
        self.waited += wait_for_quiet(self.meter, QUIET_CORES, min(GATE_WAIT, left))
        flip, self._flip = self._flip, not self._flip
        return take_pair(server_side, local_side, flip)

    def take_levels(
        self,
        pairs: dict[int, list[Pair]],
        want: int,
        max_tokens: int,
        sides: tuple[SampleStep, SampleStep],
        *,
        prompt: Callable[[int], str],
        first_prompt: int,
        timeout: Callable[[int], float],
    ) -> None:
        """Pairs at every level of ``pairs`` (concurrent streams -> its pairs so
        far), one level after the other in turn, until each has ``want`` good
        ones or the budget is spent. A level of ``n`` streams takes the next
        ``n`` prompts (``prompt(i)`` from ``first_prompt`` on, each used once)
        and ``timeout(n)`` seconds until its good samples say otherwise."""
        counter = first_prompt
        while levels := [n for n in pairs if self.want_more(pairs[n], want, max_tokens)]:
            for n in levels:
                prompts = [prompt(counter + i) for i in range(n)]
                counter += n
                limit = sample_timeout(pairs[n], max_tokens, default=timeout(n))
                server_side, local_side = (partial(s, prompts, max_tokens, limit) for s in sides)
                pairs[n].append(self.take(server_side, local_side))


def sample_timeout(pairs: Sequence[Pair], max_tokens: int, default: float) -> float:
    """4x the wall time of earlier good samples (at least 5 s), else ``default``."""
    walls = [
        max(p.server.batch.wall, p.local.batch.wall)
        for p in pairs
        if p.quiet and not p.problems(max_tokens)
    ]
    return max(5.0, 4 * median(walls)) if walls else default
