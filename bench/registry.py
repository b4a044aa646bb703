"""The registry of benchmark groups.

A group is a function ``run(options) -> list[Table]`` registered under a short
name with ``@register``. Its module is listed in ``GROUP_MODULES`` so that
``load_groups`` imports it; a later group (embeddings, whisper, MLX) adds one
module and one line here.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

from .report import Table

# Modules that register groups, in the order they run.
GROUP_MODULES: tuple[str, ...] = (
    "bench.lm",
    "bench.mlx",
    "bench.whisper",
    "bench.embeddings",
    "bench.vision",
    "bench.images",
    "bench.hub",
    "bench.overhead",
    "bench.apis",
    "bench.peers",
)


@dataclass(frozen=True)
class Options:
    """What every group is told: how hard to try and where to log."""

    quick: bool = False
    log_dir: str = "."

    def reps(self, full: int, quick: int) -> int:
        """The number of measured repetitions for this run."""
        return quick if self.quick else full


GroupRun = Callable[[Options], list[Table]]


@dataclass(frozen=True)
class Group:
    """One benchmark group: a name for ``--only``, a description, a runner."""

    name: str
    description: str
    run: GroupRun
    needs: tuple[str, ...] = field(default=())


GROUPS: dict[str, Group] = {}


def register(
    name: str, description: str, *, needs: tuple[str, ...] = ()
) -> Callable[[GroupRun], GroupRun]:
    """Register ``run`` as the group ``name``; ``needs`` lists modules it imports."""

    def decorate(run: GroupRun) -> GroupRun:
        if name in GROUPS:
            raise ValueError(f"benchmark group {name!r} registered twice")
        GROUPS[name] = Group(name=name, description=description, run=run, needs=needs)
        return run

    return decorate


def load_groups() -> dict[str, Group]:
    """Import every group module and return the registry, in run order."""
    for module in GROUP_MODULES:
        importlib.import_module(module)
    return GROUPS


def missing_needs(group: Group) -> list[str]:
    """The modules ``group`` needs that cannot be imported here."""
    return [name for name in group.needs if importlib.util.find_spec(name) is None]
