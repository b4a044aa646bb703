"""What the runtime needs from an engine, and the errors an engine raises."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ipc.messages import (
    EngineCounters,
    EngineMemory,
    Finished,
    Generate,
    HandlerMessage,
    TokenLogprob,
    ToolCallDelta,
)

# send(message): send a frame to the server (any thread may call it).
Send = Callable[[HandlerMessage], None]


class Emit(Protocol):
    """Hand a piece of output covering ``n_tokens`` new tokens to the client."""

    def __call__(
        self,
        text: str,
        n_tokens: int,
        *,
        reasoning: str = "",
        tool_calls: list[ToolCallDelta] | None = None,
        logprobs: list[TokenLogprob] | None = None,
    ) -> None: ...


# should_stop(): True once the request was cancelled; checked between steps.
ShouldStop = Callable[[], bool]


class EngineError(Exception):
    """A request the engine refuses; ``kind`` becomes the ``Failed`` kind."""

    kind = "invalid_request"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ContextLengthExceeded(EngineError):
    """The prompt (plus the tokens asked for) does not fit the context."""

    kind = "context_length_exceeded"


class LoadError(Exception):
    """The engine cannot load the model it was given."""

    kind = "load_error"


class ModelFilesMissing(LoadError):
    """The model's files are not on this machine."""

    kind = "not_found"


class Engine(Protocol):
    """A loaded model: what every engine offers the runtime."""

    name: str
    # The longest input the model takes, in tokens (0 where that means nothing).
    context_length: int
    # How many requests may run at once (each on its own thread).
    parallel: int

    def memory(self) -> EngineMemory:
        """Engine-reported memory figures (zero where the engine cannot tell)."""
        ...

    def close(self) -> None:
        """Release the model."""
        ...


@runtime_checkable
class Counting(Protocol):
    """An engine that counts its batches and cache hits (embeddings)."""

    def counters(self) -> EngineCounters:
        """The engine's work counters."""
        ...


class TextEngine(Engine, Protocol):
    """A language model that turns ``Generate`` requests into text."""

    def generate(self, request: Generate, emit: Emit, should_stop: ShouldStop) -> Finished:
        """Run one request to the end, calling ``emit`` for each new piece."""
        ...


class RequestEngine(Engine, Protocol):
    """An engine for any other request in ``WORK_TYPES`` (embeddings, audio...)."""

    def handle(self, request: object, send: Send, should_stop: ShouldStop) -> HandlerMessage:
        """Run one request, ``send`` any partial frames, return the last frame."""
        ...
