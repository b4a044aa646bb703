"""An orchestrated chat completion, whole or streamed: check the request,
cast the roles, run the mode, shape the answer."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator

import trio

from bodega.errors import BodegaError, InvalidRequest, error_body
from bodega.openai import sse
from bodega.openai.requests import ChatCompletionRequest
from bodega.openai.responses import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChoiceDelta,
    PromptTokensDetails,
    UsageOut,
)
from bodega.registry.model import Model
from bodega.registry.registry import Registry
from bodega.services.chat import chat_request
from bodega.services.text import new_id, summed

from .config import Cast, Mode, OrchestrationSection, cast_of
from .runner import Run, resolve, run_mode
from .shape import OrchestratedChunk, OrchestratedCompletion, OrchestrationOut, StepMark


class Prepared:
    """A checked request: its roles cast onto loaded models, ready to run."""

    def __init__(
        self, body: ChatCompletionRequest, model: Model, cast: Cast, models: dict[str, list[Model]]
    ) -> None:
        self.body, self.model, self.cast, self.models = body, model, cast, models


def _check(body: ChatCompletionRequest) -> None:
    # One answer of plain text: the steps feed each other text only.
    if body.n != 1:
        raise InvalidRequest("orchestration_mode answers one choice: n must be 1", param="n")
    if body.tools or body.functions:
        raise InvalidRequest("orchestration_mode does not run tools", param="tools")
    if body.logprobs:
        raise InvalidRequest("orchestration_mode returns no logprobs", param="logprobs")


def mode_of(body: ChatCompletionRequest, config: OrchestrationSection) -> Mode | None:
    """The mode ``body`` runs in: its ``orchestration_mode``, else the
    configured ``default_mode`` for a request that mode can answer (one
    choice of text: no tools, no logprobs); None: an ordinary completion."""
    if body.orchestration_mode is not None:
        return body.orchestration_mode
    plain = body.n == 1 and not (body.tools or body.functions or body.logprobs)
    return config.default_mode if config.default_mode != "single" and plain else None


async def prepare(
    body: ChatCompletionRequest,
    model: Model,
    registry: Registry,
    config: OrchestrationSection,
    mode: Mode,
) -> Prepared:
    """Check ``body`` (a 400 names the field at fault) and find every model
    its roles in ``mode`` name, before anything runs."""
    _check(body)
    cast = cast_of(mode, model.id, config, body.orchestration)
    models = await resolve(registry, cast, body.keep_alive)
    return Prepared(body, model, cast, models)


def _usage(run: Run) -> UsageOut:
    # Every step read its own prompt: the work done is the sum of them all.
    total = summed(run.usages)
    return UsageOut(
        prompt_tokens=total.prompt_tokens,
        completion_tokens=total.completion_tokens,
        total_tokens=total.prompt_tokens + total.completion_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=total.cached_tokens),
    )


def _finish(run: Run) -> str:
    decision = run.decision
    if decision is not None and decision.member is not None:
        return run.steps[decision.member].finish_reason
    return run.steps[-1].finish_reason if run.steps else "stop"


def _run(prepared: Prepared) -> Run:
    # Images stay out: the steps pass text between models.
    return Run(prepared.body, chat_request(prepared.body))


async def answer(prepared: Prepared) -> OrchestratedCompletion:
    """The whole orchestrated completion."""
    run = _run(prepared)
    await run_mode(run, prepared.cast, prepared.models)
    choice = ChatChoice(
        index=0,
        message=AssistantMessage(role="assistant", content=run.answer),
        finish_reason=_finish(run),
    )
    return OrchestratedCompletion(
        id=new_id("chatcmpl"),
        created=int(time.time()),
        model=prepared.model.id,
        choices=[choice],
        usage=_usage(run),
        orchestration=run.out(prepared.cast.mode),
    )


def stream(prepared: Prepared, nursery: trio.Nursery) -> AsyncGenerator[bytes, None]:
    """SSE events: the final answer's text as normal chunks (with
    ``orchestration.stream_stages``, every earlier step's text too, marked
    ``orchestration_step``), then a finishing chunk with ``orchestration``.

    The run goes on in ``nursery`` (the server's) so that parallel steps can
    feed one stream; the stream's end, a client that leaves included,
    cancels it and so every running step."""
    body = prepared.body
    run = _run(prepared)
    stages = bool(body.orchestration and body.orchestration.stream_stages)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    completion_id, created, name = new_id("chatcmpl"), int(time.time()), prepared.model.id
    send, receive = trio.open_memory_channel[bytes](64)
    scope = trio.CancelScope()
    started = False

    def chunk(
        delta: ChoiceDelta,
        mark: StepMark | None = None,
        reason: str | None = None,
        orchestration: OrchestrationOut | None = None,
    ) -> bytes:
        choice = ChatChunkChoice(index=0, delta=delta, finish_reason=reason)
        out = OrchestratedChunk(
            id=completion_id,
            created=created,
            model=name,
            choices=[choice],
            orchestration_step=mark,
            orchestration=orchestration,
        )
        return sse.event(out)

    async def emit(index: int, text: str, final: bool) -> None:
        nonlocal started
        if final:
            role = b"" if started else chunk(ChoiceDelta(role="assistant", content=""))
            started = True
            await send.send(role + chunk(ChoiceDelta(content=text)))
        elif stages:
            step = run.steps[index]
            await send.send(
                chunk(ChoiceDelta(content=text), StepMark(index, step.role, step.model))
            )

    run.emit = emit

    async def produce() -> None:
        with scope:
            async with send:
                try:
                    await run_mode(run, prepared.cast, prepared.models)
                    end = chunk(
                        ChoiceDelta(),
                        reason=_finish(run),
                        orchestration=run.out(prepared.cast.mode),
                    )
                    if not started:
                        end = chunk(ChoiceDelta(role="assistant", content="")) + end
                    await send.send(end)
                    if include_usage:
                        await send.send(chunk_usage(run))
                except BodegaError as exc:
                    await send.send(sse.event(error_body(exc)))
                await send.send(sse.DONE)

    def chunk_usage(run: Run) -> bytes:
        return sse.event(
            OrchestratedChunk(
                id=completion_id, created=created, model=name, choices=[], usage=_usage(run)
            )
        )

    async def events() -> AsyncGenerator[bytes, None]:
        nursery.start_soon(produce)
        try:
            async with receive:
                async for event in receive:
                    yield event
        finally:
            scope.cancel()

    return events()
