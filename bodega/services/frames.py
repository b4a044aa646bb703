"""A request's frames: the first awaited before answering, the rest gathered."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TypeVar

from bodega.errors import HandlerFailed

T = TypeVar("T")
P = TypeVar("P")
E = TypeVar("E")


async def first_frame(frames: AsyncGenerator[T, None]) -> T:
    """A request's first frame, awaited before answering: errors before any
    output (unknown model, full queue, bad input) become HTTP statuses even
    for streams. ``frames`` is closed if that fails."""
    try:
        return await frames.__anext__()
    except StopAsyncIteration:
        raise HandlerFailed("The model ended the request without an answer.") from None
    except BaseException:
        await frames.aclose()
        raise


async def gather(
    first: object, frames: AsyncGenerator[object, None], partial: type[P], end: type[E]
) -> tuple[list[P], E]:
    """The ``partial`` frames from ``first`` on, and the ``end`` frame that
    follows them (a non-streaming answer's whole output); ``frames`` is closed."""
    parts: list[P] = []
    frame = first
    async with aclosing(frames):
        while isinstance(frame, partial):
            parts.append(frame)
            frame = await frames.__anext__()
    if not isinstance(frame, end):
        raise HandlerFailed(f"The model answered {type(frame).__name__}, not {end.__name__}.")
    return parts, frame
