"""Stand-ins for a model in ``services.text``: one that replays cached frames
and one that records what the real model answers.

``services.text`` asks a model for two things only, ``id`` and
``stream(message)``, so a hit renders through the very code a miss does:
JSON or SSE chunks in the normal shape, whatever the first request was.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing

import msgspec

from bodega.registry.model import Model
from bodega.telemetry.context import CURRENT
from ipc.messages import Delta, Finished, Generate

Frame = Delta | Finished
Choices = list[list[Frame]]

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[list[Delta | Finished]])


def encode_choices(choices: Choices) -> bytes:
    """The bytes a cache entry keeps: every choice's frames, ``Finished`` last."""
    return _encoder.encode(choices)


def decode_choices(value: bytes) -> Choices:
    """The frames of a cache entry, per choice."""
    return _decoder.decode(value)


class _Choices:
    """Which of the ``n`` choices a message is: a seeded request's choices
    differ by seed (``text.choice_message``); otherwise they are asked in turn."""

    def __init__(self, message: Generate) -> None:
        self.base_seed = message.sampling.seed
        self.asked = 0

    def index(self, message: Generate) -> int:
        if self.base_seed is not None and message.sampling.seed is not None:
            return message.sampling.seed - self.base_seed
        self.asked += 1
        return self.asked - 1


class Replay:
    """A model that answers from a cache entry without reaching the handler."""

    def __init__(self, model: Model, message: Generate, choices: Choices) -> None:
        self.id = model.id
        self._choices = choices
        self._which = _Choices(message)

    async def stream(
        self, message: Generate, priority: int | None = None
    ) -> AsyncGenerator[Frame, None]:
        """The cached frames of the choice ``message`` asks for; the access
        log gets the model and the answer's usage, as a miss's line does."""
        info = CURRENT.get()
        if info is not None:
            info.model = self.id
        for frame in self._choices[self._which.index(message)]:
            if isinstance(frame, Finished) and info is not None:
                info.prompt_tokens += frame.usage.prompt_tokens
                info.completion_tokens += frame.usage.completion_tokens
                info.cached_tokens += frame.usage.cached_tokens
            yield frame


class Recorder:
    """The real model, with each choice's frames kept; once every choice has
    finished (none cancelled, none failed) ``store`` gets them all."""

    def __init__(
        self,
        model: Model,
        message: Generate,
        n: int,
        store: Callable[[Choices], Awaitable[None]],
    ) -> None:
        self.id = model.id
        self._model = model
        self._which = _Choices(message)
        self._results: dict[int, list[Frame]] = {}
        self._n = n
        self._store = store

    async def stream(
        self, message: Generate, priority: int | None = None
    ) -> AsyncGenerator[Frame, None]:
        """The model's frames, recorded on the way."""
        index = self._which.index(message)
        frames: list[Frame] = []
        async with aclosing(self._model.stream(message, priority)) as source:
            async for frame in source:
                if isinstance(frame, Delta | Finished):
                    frames.append(frame)
                if isinstance(frame, Finished) and frame.reason != "cancelled":
                    # Stored before the last frame goes on: a consumer that
                    # stops at ``Finished`` never resumes this generator.
                    self._results[index] = frames
                    if len(self._results) == self._n:
                        await self._store([self._results[i] for i in range(self._n)])
                yield frame  # type: ignore[misc]
