"""Awaiting a request's first frame before answering."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TypeVar

from bodega.errors import HandlerFailed

T = TypeVar("T")


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
