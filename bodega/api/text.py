"""``POST /v1/chat/completions`` and ``POST /v1/completions``.

Both start the generation before answering, so that anything that fails
early (unknown model, full queue, prompt too long) is a proper HTTP status
even for streams. A failure after streaming began is an SSE error event
followed by ``data: [DONE]``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Any

import msgspec
import trio
from quart import Blueprint, Response

from bodega.errors import BodegaError, error_body
from bodega.openai import sse
from bodega.openai.requests import ChatCompletionRequest, CompletionRequest
from bodega.openai.responses import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChoiceDelta,
    CompletionChoice,
    PromptTokensDetails,
    TextCompletion,
    UsageOut,
    encoder,
)
from bodega.registry.registry import TEXT_MODELS, Model
from bodega.services.chat import chat_fields, logit_bias_of
from bodega.services.choices import (
    Assembled,
    chat_logprobs,
    completion_logprobs,
    delta_out,
    finish_reason,
)
from bodega.services.completions import prompt_of
from bodega.services.generation import generate
from bodega.services.sampling import sampling_of, stop_of
from ipc.messages import Delta, Finished, Sampling, Usage

from .common import decode_json, first_frame, json_response, registry, sse_response

blueprint = Blueprint("text", __name__)

Frames = AsyncGenerator[Delta | Finished, None]


def usage_out(usages: list[Usage]) -> UsageOut:
    """OpenAI ``usage`` from the handler's counts; the prompt counts once."""
    prompt = max((u.prompt_tokens for u in usages), default=0)
    completion = sum(u.completion_tokens for u in usages)
    return UsageOut(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(
            cached_tokens=max((u.cached_tokens for u in usages), default=0)
        ),
    )


async def collect(first: Delta | Finished, frames: Frames) -> tuple[Assembled, Finished]:
    """All output of a non-streaming choice, and its ``Finished``."""
    assembled = Assembled()
    frame = first
    async with aclosing(frames):
        while isinstance(frame, Delta):
            assembled.add(frame)
            frame = await frames.__anext__()
    return assembled, frame


def _choice_sampling(sampling: Sampling, index: int) -> Sampling:
    """Choice ``index`` of ``n``: a seeded request stays reproducible, choices differ."""
    if index == 0 or sampling.seed is None:
        return sampling
    return msgspec.structs.replace(sampling, seed=sampling.seed + index)


async def run_choices(
    model: Model, fields: dict[str, Any], sampling: Sampling, n: int
) -> list[tuple[Assembled, Finished]]:
    """``n`` choices side by side (admission decides how many run at once)."""
    results: list[tuple[Assembled, Finished] | None] = [None] * n

    async def one(index: int) -> None:
        frames = generate(model, **fields, sampling=_choice_sampling(sampling, index))
        results[index] = await collect(await first_frame(frames), frames)

    async with trio.open_nursery() as nursery:
        for index in range(n):
            nursery.start_soon(one, index)
    return [r for r in results if r is not None]


async def stream_choices(
    model: Model,
    fields: dict[str, Any],
    sampling: Sampling,
    n: int,
    *,
    on_delta: Callable[[int, Delta], bytes | None],
    on_finish: Callable[[int, Finished], bytes],
    on_end: Callable[[list[Usage]], list[bytes]],
) -> AsyncGenerator[bytes, None]:
    """SSE events of ``n`` streamed choices, one after the other.

    The first choice is started before this returns, so that early errors
    are HTTP statuses; a choice that breaks later ends the stream with an
    error event. The stream ends with ``[DONE]``.
    """
    first_frames = generate(model, **fields, sampling=sampling)

    async def events(first: Delta | Finished) -> AsyncGenerator[bytes, None]:
        usages: list[Usage] = []
        try:
            for index in range(n):
                frames = (
                    first_frames
                    if index == 0
                    else generate(model, **fields, sampling=_choice_sampling(sampling, index))
                )
                async with aclosing(frames):
                    frame = first if index == 0 else await first_frame(frames)
                    while isinstance(frame, Delta):
                        event = on_delta(index, frame)
                        if event:
                            yield event
                        frame = await frames.__anext__()
                    usages.append(frame.usage)
                    yield on_finish(index, frame)
            for event in on_end(usages):
                yield event
        except BodegaError as exc:
            yield sse.event(error_body(exc))
        finally:
            await first_frames.aclose()
        yield sse.DONE

    return events(await first_frame(first_frames))


def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


async def chat_answer(
    model: Model, fields: dict[str, Any], sampling: Sampling, n: int, *, logprobs: bool
) -> ChatCompletion:
    """A whole (non-streaming) chat completion of ``n`` choices."""
    results = await run_choices(model, fields, sampling, n)
    choices = [
        ChatChoice(
            index=i,
            message=assembled.message(),
            finish_reason=finish_reason(finished),
            logprobs=chat_logprobs(assembled.logprobs) if logprobs else None,
        )
        for i, (assembled, finished) in enumerate(results)
    ]
    return ChatCompletion(
        id=_new_id("chatcmpl"),
        created=int(time.time()),
        model=model.id,
        choices=choices,
        usage=usage_out([f.usage for _, f in results]),
    )


async def chat_stream(
    model: Model,
    fields: dict[str, Any],
    sampling: Sampling,
    n: int,
    *,
    logprobs: bool,
    include_usage: bool,
) -> AsyncGenerator[bytes, None]:
    """The SSE events of a streamed chat completion of ``n`` choices."""
    completion_id, created, name = _new_id("chatcmpl"), int(time.time()), model.id
    started: set[int] = set()

    def chunk(index: int, delta: ChoiceDelta, reason: str | None = None, **extra: Any) -> bytes:
        choice = ChatChunkChoice(index=index, delta=delta, finish_reason=reason, **extra)
        return sse.event(
            ChatCompletionChunk(id=completion_id, created=created, model=name, choices=[choice])
        )

    # Most events carry text only: the template of their index around the JSON
    # string of the text, rather than a Struct tree encoded anew per token.
    templates: dict[int, tuple[bytes, bytes]] = {}

    def text_event(index: int, text: str) -> bytes:
        if index not in templates:
            head, _, tail = chunk(index, ChoiceDelta(content="\0")).rpartition(b'"\\u0000"')
            templates[index] = head, tail
        head, tail = templates[index]
        return head + encoder.encode(text) + tail

    def on_delta(index: int, frame: Delta) -> bytes | None:
        plain = not (frame.reasoning or frame.tool_calls or (logprobs and frame.logprobs))
        if plain and frame.text and index in started:
            return text_event(index, frame.text)
        delta = delta_out(frame)
        if delta is None and not (logprobs and frame.logprobs):
            return None
        role = b""
        if index not in started:
            # The first content arrives with the role chunk: one write, not two.
            started.add(index)
            role = chunk(index, ChoiceDelta(role="assistant", content=""))
        entries = chat_logprobs(frame.logprobs) if logprobs and frame.logprobs else None
        return role + chunk(index, delta or ChoiceDelta(), logprobs=entries)

    def on_finish(index: int, finished: Finished) -> bytes:
        role = b"" if index in started else chunk(index, ChoiceDelta(role="assistant", content=""))
        return role + chunk(index, ChoiceDelta(), finish_reason(finished))

    def on_end(usages: list[Usage]) -> list[bytes]:
        if not include_usage:
            return []
        last = ChatCompletionChunk(
            id=completion_id, created=created, model=name, choices=[], usage=usage_out(usages)
        )
        return [sse.event(last)]

    return await stream_choices(
        model, fields, sampling, n, on_delta=on_delta, on_finish=on_finish, on_end=on_end
    )


@blueprint.post("/v1/chat/completions")
async def chat_completions() -> Response:
    """OpenAI chat completions, JSON or SSE."""
    body = await decode_json(ChatCompletionRequest)
    fields = chat_fields(body)
    fields["stop"] = stop_of(body)
    sampling = sampling_of(body)
    model = registry().resolve(body.model, kinds=TEXT_MODELS)
    logprobs = bool(body.logprobs)
    if not body.stream:
        return json_response(await chat_answer(model, fields, sampling, body.n, logprobs=logprobs))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    events = await chat_stream(
        model, fields, sampling, body.n, logprobs=logprobs, include_usage=include_usage
    )
    return sse_response(events)


@blueprint.post("/v1/completions")
async def completions() -> Response:
    """OpenAI legacy prompt completions, JSON or SSE."""
    body = await decode_json(CompletionRequest)
    top = body.logprobs or 0
    fields: dict[str, Any] = {
        "prompt": prompt_of(body),
        "max_tokens": body.max_tokens,
        "stop": stop_of(body),
        "logprobs": body.logprobs is not None,
        "top_logprobs": top,
        "logit_bias": logit_bias_of(body.logit_bias),
    }
    sampling = sampling_of(body)
    model = registry().resolve(body.model, kinds=TEXT_MODELS)
    completion_id, created, name = _new_id("cmpl"), int(time.time()), model.id
    want_logprobs = body.logprobs is not None

    def completion(
        choices: list[CompletionChoice], usage: UsageOut | None = None
    ) -> TextCompletion:
        return TextCompletion(
            id=completion_id, created=created, model=name, choices=choices, usage=usage
        )

    if not body.stream:
        results = await run_choices(model, fields, sampling, body.n)
        choices = [
            CompletionChoice(
                index=i,
                text="".join(assembled.text),
                finish_reason=finish_reason(finished),
                logprobs=completion_logprobs(assembled.logprobs, top) if want_logprobs else None,
            )
            for i, (assembled, finished) in enumerate(results)
        ]
        return json_response(completion(choices, usage_out([f.usage for _, f in results])))

    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    offsets: dict[int, int] = {}

    def on_delta(index: int, frame: Delta) -> bytes | None:
        if not frame.text and not (want_logprobs and frame.logprobs):
            return None
        logprobs = None
        if want_logprobs:
            logprobs = completion_logprobs(frame.logprobs, top, offsets.get(index, 0))
            offsets[index] = offsets.get(index, 0) + sum(len(e.token) for e in frame.logprobs)
        choice = CompletionChoice(index=index, text=frame.text, logprobs=logprobs)
        return sse.event(completion([choice]))

    def on_finish(index: int, finished: Finished) -> bytes:
        choice = CompletionChoice(index=index, text="", finish_reason=finish_reason(finished))
        return sse.event(completion([choice]))

    def on_end(usages: list[Usage]) -> list[bytes]:
        return [sse.event(completion([], usage_out(usages)))] if include_usage else []

    events = await stream_choices(
        model,
        fields,
        sampling,
        body.n,
        on_delta=on_delta,
        on_finish=on_finish,
        on_end=on_end,
    )
    return sse_response(events)
