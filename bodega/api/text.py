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

from quart import Blueprint, Response

from bodega.errors import BodegaError, HandlerFailed, error_body
from bodega.openai import sse
from bodega.openai.requests import ChatCompletionRequest, CompletionRequest
from bodega.openai.responses import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChoiceDelta,
    CompletionChoice,
    PromptTokensDetails,
    TextCompletion,
    UsageOut,
)
from bodega.services.chat import chat_messages, max_tokens_of
from bodega.services.completions import prompt_of
from bodega.services.generation import generate
from bodega.services.sampling import check_n, sampling_of, stop_of
from ipc.messages import Delta, Finished, Usage

from .common import decode_json, json_response, registry, sse_response

blueprint = Blueprint("text", __name__)

Frames = AsyncGenerator[Delta | Finished, None]


def usage_out(usage: Usage) -> UsageOut:
    """OpenAI ``usage`` from the handler's counts."""
    return UsageOut(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.prompt_tokens + usage.completion_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=usage.cached_tokens),
    )


def finish_reason(finished: Finished) -> str:
    """``stop`` or ``length`` (a cancelled request never reaches a client)."""
    return "length" if finished.reason == "length" else "stop"


async def start(frames: Frames) -> Delta | Finished:
    """The first frame; errors before any output become HTTP statuses."""
    try:
        return await frames.__anext__()
    except StopAsyncIteration:
        raise HandlerFailed("The model ended the request without an answer.") from None
    except BaseException:
        await frames.aclose()
        raise


async def collect(first: Delta | Finished, frames: Frames) -> tuple[str, Finished]:
    """All text of a non-streaming request, and its ``Finished``."""
    parts: list[str] = []
    frame = first
    async with aclosing(frames):
        while isinstance(frame, Delta):
            parts.append(frame.text)
            frame = await frames.__anext__()
    return "".join(parts), frame


async def stream_events(
    first: Delta | Finished,
    frames: Frames,
    *,
    on_delta: Callable[[str], bytes],
    on_finish: Callable[[Finished], list[bytes]],
) -> AsyncGenerator[bytes, None]:
    """SSE events for a stream, an error event if it breaks, then ``[DONE]``."""
    async with aclosing(frames):
        frame = first
        try:
            while isinstance(frame, Delta):
                yield on_delta(frame.text)
                frame = await frames.__anext__()
            for event in on_finish(frame):
                yield event
        except BodegaError as exc:
            yield sse.event(error_body(exc))
    yield sse.DONE


def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


@blueprint.post("/v1/chat/completions")
async def chat_completions() -> Response:
    """OpenAI chat completions, JSON or SSE."""
    body = await decode_json(ChatCompletionRequest)
    messages = chat_messages(body)
    check_n(body)
    stop, sampling = stop_of(body), sampling_of(body)
    model = registry().resolve(body.model)
    frames = generate(
        model, messages=messages, max_tokens=max_tokens_of(body), stop=stop, sampling=sampling
    )
    first = await start(frames)
    completion_id, created, name = _new_id("chatcmpl"), int(time.time()), model.id

    if not body.stream:
        text, finished = await collect(first, frames)
        return json_response(
            ChatCompletion(
                id=completion_id,
                created=created,
                model=name,
                choices=[
                    ChatChoice(
                        index=0,
                        message=AssistantMessage(role="assistant", content=text),
                        finish_reason=finish_reason(finished),
                    )
                ],
                usage=usage_out(finished.usage),
            )
        )

    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(delta: ChoiceDelta, reason: str | None = None) -> bytes:
        choice = ChatChunkChoice(index=0, delta=delta, finish_reason=reason)
        return sse.event(
            ChatCompletionChunk(id=completion_id, created=created, model=name, choices=[choice])
        )

    def on_finish(finished: Finished) -> list[bytes]:
        events = [chunk(ChoiceDelta(), finish_reason(finished))]
        if include_usage:
            last = ChatCompletionChunk(
                id=completion_id,
                created=created,
                model=name,
                choices=[],
                usage=usage_out(finished.usage),
            )
            events.append(sse.event(last))
        return events

    async def events() -> AsyncGenerator[bytes, None]:
        role = chunk(ChoiceDelta(role="assistant", content=""))
        rest = stream_events(
            first,
            frames,
            on_delta=lambda text: chunk(ChoiceDelta(content=text)),
            on_finish=on_finish,
        )
        async with aclosing(rest):
            async for event in rest:
                # The first content arrives with the role chunk: one write, not two.
                yield role + event if role else event
                role = b""

    return sse_response(events())


@blueprint.post("/v1/completions")
async def completions() -> Response:
    """OpenAI legacy prompt completions, JSON or SSE."""
    body = await decode_json(CompletionRequest)
    prompt = prompt_of(body)
    check_n(body)
    stop, sampling = stop_of(body), sampling_of(body)
    model = registry().resolve(body.model)
    frames = generate(
        model, prompt=prompt, max_tokens=body.max_tokens, stop=stop, sampling=sampling
    )
    first = await start(frames)
    completion_id, created, name = _new_id("cmpl"), int(time.time()), model.id

    def completion(
        text: str, reason: str | None = None, usage: UsageOut | None = None
    ) -> TextCompletion:
        choices = [CompletionChoice(index=0, text=text, finish_reason=reason)]
        return TextCompletion(
            id=completion_id, created=created, model=name, choices=choices, usage=usage
        )

    if not body.stream:
        text, finished = await collect(first, frames)
        return json_response(completion(text, finish_reason(finished), usage_out(finished.usage)))

    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def on_finish(finished: Finished) -> list[bytes]:
        events = [sse.event(completion("", finish_reason(finished)))]
        if include_usage:
            last = TextCompletion(
                id=completion_id,
                created=created,
                model=name,
                choices=[],
                usage=usage_out(finished.usage),
            )
            events.append(sse.event(last))
        return events

    return sse_response(
        stream_events(
            first, frames, on_delta=lambda text: sse.event(completion(text)), on_finish=on_finish
        )
    )
