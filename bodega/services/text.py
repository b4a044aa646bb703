"""Chat and legacy completions on a language model: ``n`` choices, answers and streams.

Both start the generation before returning, so that anything that fails
early (unknown model, full queue, prompt too long) is a proper HTTP status
even for streams. A failure after streaming began is an SSE error event
followed by ``data: [DONE]``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from contextlib import aclosing
from typing import Any, cast

import msgspec
import trio

from bodega.errors import BodegaError, error_body
from bodega.openai import sse
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
from bodega.registry.model import Model
from ipc.messages import Delta, Finished, Generate, Usage

from .choices import Assembled, chat_logprobs, completion_logprobs, delta_out, finish_reason
from .frames import first_frame, gather

Frames = AsyncGenerator[Delta | Finished, None]


def generate(model: Model, message: Generate) -> Frames:
    """The ``Delta`` frames of one generation and its ``Finished``: the
    frames a handler answers a ``Generate`` with (ipc.messages), so the
    model's own stream, with no generator layer per token on the way."""
    return cast(Frames, model.stream(message))


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


def summed(usages: Iterable[Usage]) -> Usage:
    """Usages added up: runs that each read a prompt of their own (orchestration
    steps, a response's generations), unlike ``n`` choices of one prompt."""
    total = Usage()
    for usage in usages:
        total.prompt_tokens += usage.prompt_tokens
        total.completion_tokens += usage.completion_tokens
        total.cached_tokens += usage.cached_tokens
    return total


def choice_message(message: Generate, index: int) -> Generate:
    """Choice ``index`` of ``n``: a seeded request stays reproducible, choices differ."""
    seed = message.sampling.seed
    if index == 0 or seed is None:
        return message
    sampling = msgspec.structs.replace(message.sampling, seed=seed + index)
    return msgspec.structs.replace(message, sampling=sampling)


async def collect(first: Delta | Finished, frames: Frames) -> tuple[Assembled, Finished]:
    """All output of a non-streaming choice, and its ``Finished``."""
    deltas, finished = await gather(first, frames, Delta, Finished)
    assembled = Assembled()
    for delta in deltas:
        assembled.add(delta)
    return assembled, finished


async def run_choices(model: Model, message: Generate, n: int) -> list[tuple[Assembled, Finished]]:
    """``n`` choices side by side (admission decides how many run at once)."""
    results: list[tuple[Assembled, Finished] | None] = [None] * n

    async def one(index: int) -> None:
        frames = generate(model, choice_message(message, index))
        results[index] = await collect(await first_frame(frames), frames)

    async with trio.open_nursery() as nursery:
        for index in range(n):
            nursery.start_soon(one, index)
    return [r for r in results if r is not None]


async def stream_choices(
    model: Model,
    message: Generate,
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
    first_frames = generate(model, message)

    async def events(first: Delta | Finished) -> AsyncGenerator[bytes, None]:
        usages: list[Usage] = []
        try:
            for index in range(n):
                frames = (
                    first_frames if index == 0 else generate(model, choice_message(message, index))
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


def new_id(prefix: str) -> str:
    """A fresh completion id such as ``chatcmpl-…``."""
    return f"{prefix}-{secrets.token_hex(12)}"


async def chat_answer(model: Model, message: Generate, n: int, *, logprobs: bool) -> ChatCompletion:
    """A whole (non-streaming) chat completion of ``n`` choices."""
    results = await run_choices(model, message, n)
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
        id=new_id("chatcmpl"),
        created=int(time.time()),
        model=model.id,
        choices=choices,
        usage=usage_out([f.usage for _, f in results]),
    )


async def chat_stream(
    model: Model, message: Generate, n: int, *, logprobs: bool, include_usage: bool
) -> AsyncGenerator[bytes, None]:
    """The SSE events of a streamed chat completion of ``n`` choices."""
    completion_id, created, name = new_id("chatcmpl"), int(time.time()), model.id
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
        model, message, n, on_delta=on_delta, on_finish=on_finish, on_end=on_end
    )


async def completion_answer(
    model: Model, message: Generate, n: int, *, logprobs: int | None
) -> TextCompletion:
    """A whole legacy completion of ``n`` choices; ``logprobs`` as the request gave it."""
    results = await run_choices(model, message, n)
    choices = [
        CompletionChoice(
            index=i,
            text="".join(assembled.text),
            finish_reason=finish_reason(finished),
            logprobs=(
                completion_logprobs(assembled.logprobs, logprobs) if logprobs is not None else None
            ),
        )
        for i, (assembled, finished) in enumerate(results)
    ]
    return TextCompletion(
        id=new_id("cmpl"),
        created=int(time.time()),
        model=model.id,
        choices=choices,
        usage=usage_out([f.usage for _, f in results]),
    )


async def completion_stream(
    model: Model, message: Generate, n: int, *, logprobs: int | None, include_usage: bool
) -> AsyncGenerator[bytes, None]:
    """The SSE events of a streamed legacy completion of ``n`` choices."""
    completion_id, created, name = new_id("cmpl"), int(time.time()), model.id
    offsets: dict[int, int] = {}

    def completion(
        choices: list[CompletionChoice], usage: UsageOut | None = None
    ) -> TextCompletion:
        return TextCompletion(
            id=completion_id, created=created, model=name, choices=choices, usage=usage
        )

    def on_delta(index: int, frame: Delta) -> bytes | None:
        if not frame.text and not (logprobs is not None and frame.logprobs):
            return None
        entries = None
        if logprobs is not None:
            entries = completion_logprobs(frame.logprobs, logprobs, offsets.get(index, 0))
            offsets[index] = offsets.get(index, 0) + sum(len(e.token) for e in frame.logprobs)
        return sse.event(
            completion([CompletionChoice(index=index, text=frame.text, logprobs=entries)])
        )

    def on_finish(index: int, finished: Finished) -> bytes:
        choice = CompletionChoice(index=index, text="", finish_reason=finish_reason(finished))
        return sse.event(completion([choice]))

    def on_end(usages: list[Usage]) -> list[bytes]:
        return [sse.event(completion([], usage_out(usages)))] if include_usage else []

    return await stream_choices(
        model, message, n, on_delta=on_delta, on_finish=on_finish, on_end=on_end
    )
