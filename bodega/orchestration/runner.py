"""The modes: which steps run, in what order, side by side where the mode
allows. Every step is a normal generation through ``Model.stream``; a run
cancelled (a client that left) closes the frames of every running step,
which cancels their work in the handlers."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

import msgspec
import trio

from bodega.errors import BodegaError, InvalidRequest, ModelNotFound
from bodega.openai.requests import ChatCompletionRequest
from bodega.registry.model import Model
from bodega.registry.registry import TEXT_MODELS, Registry
from bodega.services.choices import finish_reason
from bodega.services.sampling import with_defaults
from bodega.services.text import generate
from ipc.messages import ChatMessage, Delta, Generate, Usage

from . import prompts
from .config import Cast, Part
from .shape import Decision, OrchestrationOut, StepOut

# (step index, text, whether it is the final answer's text)
Emit = Callable[[int, str, bool], Awaitable[None]]
Call = tuple[str, Model, list[ChatMessage], int | None]

_PICK = re.compile(r"\s*`?PICK\s*#?\[?(\d+)", re.IGNORECASE)
_MERGE = re.compile(r"\s*`?MERGE`?:?\s*", re.IGNORECASE)


async def resolve(
    registry: Registry, cast: Cast, keep_alive: float | str | None
) -> dict[str, list[Model]]:
    """The loaded models of ``cast``; a model no one serves is a 400 naming
    the field that named it."""
    models: dict[str, list[Model]] = {}
    for key, parts in cast.parts.items():
        models[key] = [await _find(registry, part, keep_alive) for part in parts]
    return models


async def _find(registry: Registry, part: Part, keep_alive: float | str | None) -> Model:
    try:
        return await registry.find(
            part.model, kinds=TEXT_MODELS, param=part.param, keep_alive=keep_alive
        )
    except ModelNotFound as exc:
        if part.param == "model":
            raise
        raise InvalidRequest(exc.message, param=part.param) from None


@dataclass
class Run:
    """One orchestrated request: its steps so far and where their text goes."""

    body: ChatCompletionRequest
    base: Generate
    emit: Emit | None = None
    steps: list[StepOut] = field(default_factory=list)
    usages: list[Usage] = field(default_factory=list)
    decision: Decision | None = None
    answer: str = ""
    started: float = field(default_factory=time.monotonic)

    @property
    def history(self) -> list[ChatMessage]:
        """The user's conversation, as every step starts from it."""
        return list(self.base.messages or [])

    def _slot(self, role: str, model: Model, round_: int | None) -> int:
        step = StepOut(
            role=role,
            model=model.id,
            content="",
            inference_time_ms=0.0,
            started_ms=0.0,
            finished_ms=0.0,
            round=round_,
        )
        self.steps.append(step)
        return len(self.steps) - 1

    def _since(self) -> float:
        return round((time.monotonic() - self.started) * 1000, 1)

    async def _run(self, index: int, model: Model, messages: list[ChatMessage], final: bool) -> str:
        message = msgspec.structs.replace(self.base, messages=messages)
        message = with_defaults(message, self.body, model.spec.defaults)
        began = time.monotonic()
        parts: list[str] = []
        frames = generate(model, message)
        step, first = self.steps[index], True
        async with aclosing(frames):
            async for frame in frames:
                if first:
                    step.started_ms, first = self._since(), False
                if not isinstance(frame, Delta):
                    self.usages.append(frame.usage)
                    step.finish_reason = finish_reason(frame)
                elif frame.text:
                    parts.append(frame.text)
                    if self.emit is not None:
                        await self.emit(index, frame.text, final)
        step.content = "".join(parts)
        step.inference_time_ms = round((time.monotonic() - began) * 1000, 1)
        step.finished_ms = self._since()
        return step.content

    async def step(
        self,
        role: str,
        model: Model,
        messages: list[ChatMessage],
        *,
        round_: int | None = None,
        final: bool = False,
    ) -> str:
        """Run one step to its end; its text streams as the answer when ``final``."""
        return await self._run(self._slot(role, model, round_), model, messages, final)

    async def parallel(self, calls: Sequence[Call]) -> list[str]:
        """Run ``calls`` side by side; the first error cancels the others and
        is raised as itself."""
        indices = [self._slot(role, model, round_) for role, model, _, round_ in calls]
        results = [""] * len(calls)
        errors: list[BodegaError] = []

        async def one(k: int, nursery: trio.Nursery) -> None:
            try:
                results[k] = await self._run(indices[k], calls[k][1], calls[k][2], False)
            except BodegaError as exc:
                errors.append(exc)
                nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            for k in range(len(calls)):
                nursery.start_soon(one, k, nursery)
        if errors:
            raise errors[0]
        return results

    def out(self, mode: str) -> OrchestrationOut:
        """The response's ``orchestration`` object."""
        return OrchestrationOut(
            mode=mode,
            models_used=list(dict.fromkeys(s.model for s in self.steps)),
            total_inference_time_ms=self._since(),
            steps=self.steps,
            decision=self.decision,
        )


async def run_mode(run: Run, cast: Cast, models: dict[str, list[Model]]) -> str:
    """Run ``cast.mode``; returns the final answer (also kept in ``run.answer``)."""
    history = run.history
    if cast.mode == "single":
        run.answer = await run.step("answer", models["answer"][0], history, final=True)
    elif cast.mode == "critique":
        drafter, critic = models["drafter"][0], models["critic"][0]
        draft = await run.step("drafter", drafter, prompts.drafter(history))
        critique = await run.step("critic", critic, prompts.critic(history, draft))
        revision = prompts.reviser(history, draft, critique)
        run.answer = await run.step("reviser", drafter, revision, final=True)
    elif cast.mode == "debate":
        turns: list[tuple[int, str]] = []
        for r in range(1, cast.rounds + 1):
            calls: list[Call] = [
                ("debater", m, prompts.debater(history, i, turns), r)
                for i, m in enumerate(models["debaters"], 1)
            ]
            spoken = await run.parallel(calls)
            turns += [(i, text) for i, text in enumerate(spoken, 1)]
        verdict = prompts.judge(history, turns)
        run.answer = await run.step("judge", models["judge"][0], verdict, final=True)
    elif cast.mode == "ensemble":
        members = models["members"]
        answers = await run.parallel([("member", m, history, None) for m in members])
        said = await run.step(
            "aggregator", models["aggregator"][0], prompts.aggregator(history, answers)
        )
        run.decision, run.answer = decide(said, answers, [m.id for m in members])
        if run.emit is not None:
            await run.emit(len(run.steps) - 1, run.answer, True)
    else:
        previous: str | None = None
        stages = models["stages"]
        for k, model in enumerate(stages):
            last = k == len(stages) - 1
            previous = await run.step("stage", model, prompts.stage(history, previous), final=last)
        run.answer = previous or ""
    return run.answer


def decide(said: str, answers: Sequence[str], ids: Sequence[str]) -> tuple[Decision, str]:
    """The aggregator's decision from its text: ``PICK n`` names a member's
    answer (1-based, as the candidates were shown); anything else is its own
    merged answer (a leading ``MERGE`` line dropped)."""
    pick = _PICK.match(said)
    if pick and 1 <= int(pick.group(1)) <= len(answers):
        k = int(pick.group(1)) - 1
        return Decision(kind="picked", member=k, model=ids[k]), answers[k]
    return Decision(kind="merged"), _MERGE.sub("", said, count=1) if _MERGE.match(said) else said
