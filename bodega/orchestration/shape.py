"""What an orchestrated chat completion adds to the wire: the response's
``orchestration`` object (the inference-service shape, plus ``steps``) and the
marks on stream chunks."""

from __future__ import annotations

from typing import Literal

import msgspec

from bodega.openai.responses import ChatCompletion, ChatCompletionChunk


class StepOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One model run of the orchestration, in the order runs were sent.
    ``started_ms`` / ``finished_ms``: when its first output arrived (after
    admission) and when it ended, since the run began; parallel steps
    overlap. ``inference_time_ms`` is from sending it to its end; ``round``
    is the debate round (1-based)."""

    role: str
    model: str
    content: str
    inference_time_ms: float
    started_ms: float
    finished_ms: float
    finish_reason: str = "stop"
    round: int | None = None


class Decision(msgspec.Struct, omit_defaults=True):
    """How an ensemble's aggregator decided: ``picked`` member ``member``
    (0-based index into the members; ``model`` its model) or ``merged``."""

    kind: Literal["picked", "merged"]
    member: int | None = None
    model: str | None = None


class OrchestrationOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``orchestration`` of the response: ``mode``, ``models_used`` (each once,
    in the order first used), ``total_inference_time_ms`` (the whole run's
    wall time) and ``steps``; ``decision`` for ensembles."""

    mode: str
    models_used: list[str]
    total_inference_time_ms: float
    steps: list[StepOut]
    decision: Decision | None = None


class OrchestratedCompletion(ChatCompletion, kw_only=True):
    """A chat completion with its ``orchestration``."""

    orchestration: OrchestrationOut


class StepMark(msgspec.Struct):
    """``orchestration_step`` of a stage's stream chunk: which step it is."""

    index: int
    role: str
    model: str


class OrchestratedChunk(ChatCompletionChunk, kw_only=True, omit_defaults=True):
    """A stream chunk: a stage's text (``orchestration_step`` set) or the
    final answer's; the finishing chunk carries ``orchestration``."""

    orchestration_step: StepMark | None = None
    orchestration: OrchestrationOut | None = None
