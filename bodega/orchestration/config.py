"""Who plays which part in each orchestration mode: the ``orchestration:``
section of config.yaml and the request's ``orchestration`` object (same keys;
the request's win, key by key; the request's ``model`` fills the rest)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal, cast, get_args

import msgspec
from msgspec import Meta

Mode = Literal["single", "critique", "debate", "ensemble", "pipeline"]
MAX_ROUNDS = 5
MAX_MEMBERS = 8
MAX_STAGES = 8
DEFAULT_ROUNDS = 2

ModelName = Annotated[str, Meta(min_length=1)]


class _Roles(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    pass


class CritiqueRoles(_Roles):
    """``critique``: the drafter drafts and revises, the critic critiques."""

    drafter: ModelName | None = None
    critic: ModelName | None = None


class DebateRoles(_Roles):
    """``debate``: two debaters argue ``rounds`` rounds, the judge concludes."""

    debaters: Annotated[list[ModelName], Meta(min_length=2, max_length=2)] | None = None
    judge: ModelName | None = None
    rounds: Annotated[int, Meta(ge=1, le=MAX_ROUNDS)] | None = None


class EnsembleRoles(_Roles):
    """``ensemble``: members answer side by side, the aggregator picks or merges."""

    members: Annotated[list[ModelName], Meta(min_length=2, max_length=MAX_MEMBERS)] | None = None
    aggregator: ModelName | None = None


class PipelineRoles(_Roles):
    """``pipeline``: each stage's output is the next stage's input."""

    stages: Annotated[list[ModelName], Meta(min_length=1, max_length=MAX_STAGES)] | None = None


class _ModeRoles(_Roles):
    critique: CritiqueRoles = msgspec.field(default_factory=CritiqueRoles)
    debate: DebateRoles = msgspec.field(default_factory=DebateRoles)
    ensemble: EnsembleRoles = msgspec.field(default_factory=EnsembleRoles)
    pipeline: PipelineRoles = msgspec.field(default_factory=PipelineRoles)


class OrchestrationSection(_ModeRoles):
    """The ``orchestration:`` section of config.yaml: roles per mode, and the
    mode of chat completions that name none (``INFERENCE_ORCHESTRATION_MODE``)."""

    default_mode: Mode = "single"


def orchestration_with_env(
    section: OrchestrationSection, environ: Mapping[str, str]
) -> OrchestrationSection:
    """``section`` with ``INFERENCE_ORCHESTRATION_MODE`` as its ``default_mode``.

    Raises ``ValueError`` naming the variable when it is not a mode.
    """
    value = environ.get("INFERENCE_ORCHESTRATION_MODE", "").strip().lower()
    if not value:
        return section
    if value not in get_args(Mode):
        modes = ", ".join(get_args(Mode))
        raise ValueError(f"invalid environment variable INFERENCE_ORCHESTRATION_MODE: {modes}")
    return msgspec.structs.replace(section, default_mode=cast(Mode, value))


class OrchestrationIn(_ModeRoles):
    """A request's ``orchestration`` object: roles overriding the config's,
    and ``stream_stages`` (with ``stream: true``: every stage's text as it
    happens, in chunks marked ``orchestration_step``)."""

    stream_stages: bool = False


@dataclass(frozen=True)
class Part:
    """One part to play: its role, the model named for it, and the request
    field that named it (a 400 names that field when the model is unknown)."""

    role: str
    model: str
    param: str


@dataclass(frozen=True)
class Cast:
    """The resolved roles of one run. ``parts`` by role name; lists for the
    roles that several models play (debaters, members, stages)."""

    mode: Mode
    parts: dict[str, list[Part]]
    rounds: int = 1


def _pick(request: object, config: object, key: str) -> object:
    value = getattr(request, key, None)
    return value if value is not None else getattr(config, key, None)


def cast_of(
    mode: Mode, model: str, config: OrchestrationSection, request: OrchestrationIn | None
) -> Cast:
    """Who plays what in ``mode``: the request's roles, else the config's,
    else ``model`` (the request's), for every part left unset."""
    if mode == "single":
        return Cast(mode, {"answer": [Part("answer", model, "model")]})
    section = getattr(config, mode)
    override = getattr(request, mode) if request is not None else None
    parts: dict[str, list[Part]] = {}

    def one(key: str) -> None:
        value = _pick(override, section, key)
        name = value if isinstance(value, str) else model
        parts[key] = [Part(key, name, f"orchestration.{mode}.{key}" if value else "model")]

    def many(key: str, default: int) -> None:
        value = _pick(override, section, key)
        names = value if isinstance(value, list) else [model] * default
        parts[key] = [
            Part(key, name, f"orchestration.{mode}.{key}[{i}]" if value else "model")
            for i, name in enumerate(names)
        ]

    rounds = 1
    if mode == "critique":
        one("drafter")
        one("critic")
    elif mode == "debate":
        many("debaters", 2)
        one("judge")
        value = _pick(override, section, "rounds")
        rounds = value if isinstance(value, int) else DEFAULT_ROUNDS
    elif mode == "ensemble":
        many("members", 2)
        one("aggregator")
    else:
        many("stages", 2)
    return Cast(mode, parts, rounds)
