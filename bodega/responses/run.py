"""One response's generations on the chat service: the server-side tool loop,
``truncation: auto``, and the events of it all.

A response is one or more generations: after one that calls only built-in
tools the server runs them, adds their calls and outputs to the output and
generates again (at most ``max_tool_calls`` calls; past it, the model answers
with ``tool_choice: none``). A generation that calls a client's function
ends the response, with the function calls for the client to run.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field

import msgspec
import trio

from bodega.cache.cache import Lookup, Outcome, ResponseCache
from bodega.errors import BodegaError, ContextLengthExceeded
from bodega.openai.responses import encoder
from bodega.registry.model import Model
from bodega.services.chat import chat_message
from bodega.services.frames import first_frame
from bodega.services.text import Frames, generate
from bodega.services.vision.fetch import FetchPolicy
from bodega.services.vision.images import RequestImages
from bodega.tools.registry import Toolbox
from ipc.messages import Delta, Finished, Generate

from .inputs import ENCRYPTED_REASONING, LOGPROBS, Tools, chat_body
from .output import OutputBuilder
from .types import CreateResponse, FunctionCallItem, Item, MessageItem, Response


@dataclass
class Prepared:
    """A checked request: its model, tools, conversation and the response to fill in."""

    body: CreateResponse
    model: Model
    tools: Tools
    items: list[Item]
    response: Response
    max_tool_calls: int
    # How the response cache answered the first generation (None: cache off).
    cache_outcome: Outcome | None = None


@dataclass
class ResponseRun:
    """The generations of one response."""

    prepared: Prepared
    toolbox: Toolbox
    policy: FetchPolicy
    stream: bool
    cache: ResponseCache | None = None
    builder: OutputBuilder = field(init=False)
    error: BodegaError | None = None
    calls_made: int = 0
    _images: RequestImages | None = None

    def __post_init__(self) -> None:
        body = self.prepared.body
        self.builder = OutputBuilder(
            self.prepared.response,
            stream=self.stream,
            logprobs=LOGPROBS in body.include or bool(body.top_logprobs),
            opaque_reasoning=ENCRYPTED_REASONING in body.include,
        )

    async def begin(self, *, answer_in_text: bool = False) -> tuple[Delta | Finished, Frames]:
        """Start a generation over the conversation so far; its first frame.
        With ``truncation: auto`` a prompt too long for the context loses its
        oldest turns until it fits."""
        prepared = self.prepared
        while True:
            output = prepared.response.output
            chat = chat_body(prepared.body, prepared.items + output, prepared.tools)
            if output:
                # After the server ran tools: a forced choice applied to the
                # first generation; max_output_tokens bounds them all.
                chat.tool_choice = "none" if answer_in_text else "auto"
                if chat.max_completion_tokens is not None:
                    chat.max_completion_tokens = max(1, chat.max_completion_tokens - self.spent)
            message, self._images = await chat_message(chat, prepared.model, self.policy)
            try:
                frames = generate(await self._answering(message, first=not output), message)
                return await first_frame(frames), frames
            except ContextLengthExceeded:
                self._release()
                if prepared.body.truncation != "auto" or not drop_oldest_turn(prepared.items):
                    raise
            except BaseException:
                self._release()
                raise

    async def _answering(self, message: Generate, *, first: bool) -> Model:
        """The model, or the response cache standing in for it: only a
        response whose tools the server never runs is cached, and only whole."""
        prepared = self.prepared
        if self.cache is None or not first:
            return prepared.model
        if prepared.tools.builtins:
            lookup = Lookup(prepared.model, None if self.cache.store is None else "bypass")
        else:
            lookup = await self.cache.lookup(prepared.model, message, 1)
        prepared.cache_outcome = lookup.outcome
        return lookup.model

    def _release(self) -> None:
        if self._images is not None:
            self._images.release()
            self._images = None

    async def events(self, first: Delta | Finished, frames: Frames) -> AsyncGenerator[bytes, None]:
        """Every event of the response from its first frame on (none when not streaming)."""
        builder = self.builder
        builder.lifecycle("response.created")
        builder.lifecycle("response.in_progress")
        length = False
        try:
            while True:
                async with aclosing(frames):
                    frame = first
                    while isinstance(frame, Delta):
                        builder.add_delta(frame)
                        if builder.events:
                            yield b"".join(builder.take())
                        frame = await frames.__anext__()
                self._release()
                calls = builder.end_generation(frame.usage)
                builtin = [c for c in calls if c.name in self.prepared.tools.builtins]
                length = frame.reason == "length" or self._budget_spent()
                if length or not builtin or len(builtin) < len(calls):
                    break
                await self._run_tools(builtin)
                for event in builder.take():
                    yield event
                limit = self.calls_made >= self.prepared.max_tool_calls
                first, frames = await self.begin(answer_in_text=limit)
            builder.finish(length=length)
        except BodegaError as exc:
            self.error = exc
            builder.fail(exc.code or exc.type, exc.message)
        finally:
            self._release()
            await frames.aclose()
        for event in builder.take():
            yield event

    @property
    def spent(self) -> int:
        """Tokens generated so far, over every generation of the response."""
        return sum(u.completion_tokens for u in self.builder.usages)

    def _budget_spent(self) -> bool:
        limit = self.prepared.body.max_output_tokens
        return limit is not None and self.spent >= limit

    async def _run_tools(self, calls: list[FunctionCallItem]) -> None:
        outputs: list[str] = [""] * len(calls)

        async def one(index: int, call: FunctionCallItem) -> None:
            try:
                result = await self.toolbox.execute(call.name, call.arguments.encode())
                outputs[index] = encoder.encode(result).decode()
            except BodegaError as exc:
                outputs[index] = encoder.encode({"error": exc.message}).decode()

        async with trio.open_nursery() as nursery:
            for index, call in enumerate(calls):
                nursery.start_soon(one, index, call)
        for call, output in zip(calls, outputs, strict=True):
            self.builder.add_tool_output(call.call_id, output)
        self.calls_made += len(calls)

    async def run_to_end(self) -> Response:
        """A non-streaming response: every generation, then the response."""
        first, frames = await self.begin()
        async for _ in self.events(first, frames):
            pass
        return self.builder.response


def drop_oldest_turn(items: list[Item]) -> bool:
    """Drop the conversation's first turn (a user message and what answered it),
    keeping system and developer messages; False when only one turn is left."""
    users = [
        i for i, item in enumerate(items) if isinstance(item, MessageItem) and item.role == "user"
    ]
    if len(users) < 2:
        return False
    keep = [
        item
        for item in items[: users[1]]
        if isinstance(item, MessageItem) and item.role in ("system", "developer")
    ]
    items[: users[1]] = keep
    return True


def snapshot(response: Response) -> Response:
    """A copy of ``response`` that later changes to the original leave alone."""
    return msgspec.json.decode(encoder.encode(response), type=Response)
