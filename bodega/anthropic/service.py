"""Anthropic Messages requests run on the chat service.

A request is converted to an OpenAI chat request (``convert``), and
``services.chat.chat_message`` resolves its images and builds the
``Generate``: the same checks and the same handler work as
``/v1/chat/completions``. Errors raised on the way name the Anthropic field.

``count_tokens`` runs the prompt with ``max_tokens`` 1 at temperature 0 and
reads ``Finished.usage.prompt_tokens``: the count comes from the model's own
chat template and tokenizer (tools, system and images included) with no new
handler message, and the prompt cache is warm for the request that follows.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TypeVar

from bodega.cache.cache import Lookup, ResponseCache
from bodega.errors import BodegaError
from bodega.registry.model import Model
from bodega.services import text
from bodega.services.chat import chat_message
from bodega.services.frames import first_frame
from bodega.services.vision.fetch import FetchPolicy
from bodega.services.vision.images import RequestImages
from ipc.messages import Generate

from .convert import ParamMap, chat_request, thinking_shown
from .requests import CountTokensRequest, MessagesRequest
from .responses import CountTokensOut, MessageOut
from .stream import message_out, stream_events

T = TypeVar("T")


@dataclass
class Prepared:
    """A request ready to run: its ``Generate``, images and field map."""

    message: Generate
    images: RequestImages
    where: ParamMap

    async def named(self, step: Awaitable[T]) -> T:
        """``step``'s result; its error names the Anthropic field."""
        try:
            return await step
        except BodegaError as exc:
            raise self.where.translate(exc) from None


async def prepare(body: CountTokensRequest, model: Model, policy: FetchPolicy) -> Prepared:
    """Convert and check ``body`` for ``model``; its images are stored (release them)."""
    request, where = chat_request(body, has_reasoning_parser=bool(model.spec.reasoning_parser))
    try:
        message, images = await chat_message(request, model, policy)
    except BodegaError as exc:
        raise where.translate(exc) from None
    return Prepared(message, images, where)


async def create(
    body: MessagesRequest, model: Model, policy: FetchPolicy, cache: ResponseCache
) -> tuple[MessageOut, Lookup]:
    """The whole answer of a non-streaming request, and how ``cache`` answered it."""
    prepared = await prepare(body, model, policy)
    try:
        cached = await cache.lookup(model, prepared.message, 1)
        [(assembled, finished)] = await prepared.named(
            text.run_choices(cached.model, prepared.message, 1)
        )
    finally:
        prepared.images.release()
    show_thinking = thinking_shown(body)
    return message_out(assembled, finished, model=model.id, show_thinking=show_thinking), cached


async def stream(
    body: MessagesRequest, model: Model, policy: FetchPolicy, cache: ResponseCache
) -> tuple[AsyncIterator[bytes], Lookup]:
    """The SSE events of a streamed request, and how ``cache`` answered it. The
    generation starts before this returns, so that early failures are HTTP statuses."""
    prepared = await prepare(body, model, policy)
    try:
        cached = await cache.lookup(model, prepared.message, 1)
        frames = text.generate(cached.model, prepared.message)
        first = await prepared.named(first_frame(frames))
    except BaseException:
        prepared.images.release()
        raise
    events: AsyncGenerator[bytes, None] = stream_events(
        first, frames, model=model.id, show_thinking=thinking_shown(body)
    )
    return (prepared.images.released_after(events) if prepared.images.parts else events), cached


async def count_tokens(
    body: CountTokensRequest, model: Model, policy: FetchPolicy
) -> CountTokensOut:
    """The prompt's tokens as the model's template and tokenizer make them."""
    prepared = await prepare(body, model, policy)
    try:
        [(_, finished)] = await prepared.named(text.run_choices(model, prepared.message, 1))
    finally:
        prepared.images.release()
    return CountTokensOut(input_tokens=finished.usage.prompt_tokens)
