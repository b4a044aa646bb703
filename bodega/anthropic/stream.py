"""A generation's frames -> Anthropic content blocks and stream events.

The handler's ``Delta`` frames carry reasoning, text and tool-call parts;
each kind becomes its own block (``thinking``, ``text``, ``tool_use``), a
new block starting whenever the kind changes.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from bodega.errors import BodegaError, HandlerFailed
from bodega.services.choices import Assembled
from bodega.telemetry.context import current_request_id
from ipc.messages import Delta, Finished

from .errors import error_body
from .responses import (
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    ContentOut,
    InputJsonDelta,
    MessageDelta,
    MessageOut,
    MessageStart,
    MessageStop,
    Ping,
    StopOut,
    StopReason,
    TextDelta,
    TextOut,
    ThinkingDelta,
    ThinkingOut,
    ToolUseOut,
    UsageOut,
    encoder,
    sse,
)


def new_message_id() -> str:
    """A fresh message id, ``msg_…``."""
    return f"msg_{secrets.token_hex(12)}"


def stop_reason(finished: Finished) -> StopReason:
    """Anthropic's ``stop_reason`` for how the generation ended."""
    if finished.reason == "length":
        return "max_tokens"
    if finished.reason == "tool_calls":
        return "tool_use"
    return "stop_sequence" if finished.stop_sequence else "end_turn"


def usage_out(finished: Finished) -> UsageOut:
    """Anthropic's ``usage``: cached prompt tokens apart from the rest."""
    usage = finished.usage
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    return UsageOut(
        input_tokens=usage.prompt_tokens - cached,
        output_tokens=usage.completion_tokens,
        cache_read_input_tokens=cached,
    )


def tool_input(arguments: str) -> dict[str, Any]:
    """A call's arguments as an object; text that is not a JSON object is kept
    under ``_raw`` (as the chat templates read such past calls)."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_raw": arguments}


def message_out(
    assembled: Assembled, finished: Finished, *, model: str, show_thinking: bool
) -> MessageOut:
    """The whole answer of a non-streaming request."""
    content: list[ContentOut] = []
    if assembled.reasoning:
        content.append(ThinkingOut("".join(assembled.reasoning) if show_thinking else ""))
    text = "".join(assembled.text)
    if text:
        content.append(TextOut(text))
    for index in sorted(assembled.calls):
        call_id, name, arguments = assembled.calls[index]
        content.append(ToolUseOut(id=call_id, name=name, input=tool_input(arguments)))
    return MessageOut(
        id=new_message_id(),
        role="assistant",
        content=content,
        model=model,
        stop_reason=stop_reason(finished),
        stop_sequence=finished.stop_sequence or None,
        usage=usage_out(finished),
    )


class Blocks:
    """The content blocks of a streamed message, opened and closed as frames come."""

    def __init__(self, *, show_thinking: bool) -> None:
        self.show_thinking = show_thinking
        self.index = -1
        self.kind: object = None  # "thinking", "text" or ("tool_use", call index)
        self._text_event: tuple[bytes, bytes] | None = None

    def _switch(self, kind: object, block: ContentOut) -> bytes:
        if kind == self.kind:
            return b""
        out = self.close()
        self.index += 1
        self.kind = kind
        return out + sse(ContentBlockStart(index=self.index, content_block=block))

    def close(self) -> bytes:
        """Stop the open block, if any."""
        if self.kind is None:
            return b""
        self.kind = None
        self._text_event = None
        return sse(ContentBlockStop(index=self.index))

    def _text(self, text: str) -> bytes:
        # Most events carry text: the event around the JSON string of the text.
        if self._text_event is None:
            event = sse(ContentBlockDelta(index=self.index, delta=TextDelta("\0")))
            head, _, tail = event.rpartition(b'"\\u0000"')
            self._text_event = head, tail
        head, tail = self._text_event
        return head + encoder.encode(text) + tail

    def delta(self, frame: Delta) -> bytes:
        """The events of one frame (b"" when it carries nothing)."""
        out = b""
        if frame.reasoning:
            out += self._switch("thinking", ThinkingOut(""))
            if self.show_thinking:
                delta = ThinkingDelta(frame.reasoning)
                out += sse(ContentBlockDelta(index=self.index, delta=delta))
        if frame.text:
            out += self._switch("text", TextOut(""))
            out += self._text(frame.text)
        for part in frame.tool_calls:
            kind = ("tool_use", part.index)
            if part.id or part.name:
                block = ToolUseOut(id=part.id, name=part.name, input={})
                out += self._switch(kind, block)
            if part.arguments and self.kind == kind:
                delta_json = InputJsonDelta(part.arguments)
                out += sse(ContentBlockDelta(index=self.index, delta=delta_json))
        return out


async def stream_events(
    first: Delta | Finished,
    frames: AsyncGenerator[Delta | Finished, None],
    *,
    model: str,
    show_thinking: bool,
) -> AsyncGenerator[bytes, None]:
    """The SSE events of a streamed message from its first frame on. A failure
    after the start is an ``error`` event; ``frames`` is closed however the
    stream ends (a client that leaves cancels the generation)."""
    blocks = Blocks(show_thinking=show_thinking)
    start = MessageOut(
        id=new_message_id(),
        role="assistant",
        content=[],
        model=model,
        stop_reason=None,
        stop_sequence=None,
        usage=UsageOut(input_tokens=0, output_tokens=0),
    )
    try:
        async with aclosing(frames):
            # The start goes out with the first content, in one write: two small
            # writes in a row wait on the client's delayed ACK.
            pending = sse(MessageStart(message=start)) + sse(Ping())
            frame = first
            while isinstance(frame, Delta):
                events = blocks.delta(frame)
                if events:
                    yield pending + events
                    pending = b""
                try:
                    frame = await frames.__anext__()
                except StopAsyncIteration:
                    raise HandlerFailed("The model ended the request without finishing.") from None
            ending = MessageDelta(
                delta=StopOut(stop_reason(frame), frame.stop_sequence or None),
                usage=usage_out(frame),
            )
            yield pending + blocks.close() + sse(ending) + sse(MessageStop())
    except BodegaError as exc:
        yield sse(error_body(exc, current_request_id()))
