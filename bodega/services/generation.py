"""Text generation on a language model: admission, handler stream, errors.

``generate`` is an async generator of ``Delta`` frames ending with one
``Finished``. It raises a ``BodegaError`` for anything that went wrong, and
leaving it early (client gone) cancels the work in the handler.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from bodega.errors import BodegaError, ContextLengthExceeded, HandlerFailed, InvalidRequest
from bodega.registry.registry import Model
from ipc.messages import Delta, Failed, Finished


def error_from_failed(failed: Failed) -> BodegaError:
    """The HTTP-facing error for a handler's ``Failed`` frame."""
    if failed.kind == "context_length_exceeded":
        return ContextLengthExceeded(failed.message, param=failed.param)
    if failed.kind == "invalid_request":
        return InvalidRequest(failed.message, param=failed.param)
    return HandlerFailed(f"The model failed: {failed.message}")


async def generate(model: Model, **fields: Any) -> AsyncGenerator[Delta | Finished, None]:
    """Run one generation of ``Generate(**fields)`` on ``model`` and yield its frames."""
    async with await model.admission.acquire():
        async with model.handler.generate(**fields) as frames:
            async for frame in frames:
                if isinstance(frame, Failed):
                    raise error_from_failed(frame)
                if isinstance(frame, (Delta, Finished)):
                    yield frame
                if isinstance(frame, Finished):
                    return
    raise HandlerFailed("The model stopped answering before the request finished.")
