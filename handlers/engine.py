"""What the runtime needs from an engine, and the errors an engine raises."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ipc.messages import Finished, Generate

# emit(text, n_tokens): hand a piece of generated text to the client.
Emit = Callable[[str, int], None]
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
    """A loaded model that turns ``Generate`` requests into text."""

    name: str
    context_length: int
    # How many ``generate`` calls may run at once (each on its own thread).
    parallel: int

    def generate(self, request: Generate, emit: Emit, should_stop: ShouldStop) -> Finished:
        """Run one request to the end, calling ``emit`` for each new piece."""
        ...

    def memory(self) -> dict[str, float]:
        """Engine-reported memory figures in bytes (may be empty)."""
        ...

    def close(self) -> None:
        """Release the model."""
        ...
