"""Anthropic Messages answers, stream events and error bodies as msgspec Structs.

Stream events are SSE as Anthropic sends them: ``event: <type>`` then
``data: <json>`` (whose ``type`` repeats the event's).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

encoder = msgspec.json.Encoder()

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]


class UsageOut(msgspec.Struct):
    """Token counts: ``input_tokens`` are the prompt's tokens not read from the
    prompt cache (``cache_read_input_tokens``), as Anthropic counts them."""

    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


class TextOut(msgspec.Struct, tag="text", tag_field="type"):
    """Answer text."""

    text: str


class ThinkingOut(msgspec.Struct, tag="thinking", tag_field="type"):
    """The model's reasoning. ``signature`` is empty: nothing here is encrypted
    or verified, and a thinking block sent back is read as it is."""

    thinking: str
    signature: str = ""


class ToolUseOut(msgspec.Struct, tag="tool_use", tag_field="type"):
    """A call of a client tool; ``input`` is its arguments object."""

    id: str
    name: str
    input: dict[str, Any]


ContentOut = ThinkingOut | TextOut | ToolUseOut


class MessageOut(msgspec.Struct, tag="message", tag_field="type"):
    """The answer of ``POST /v1/messages``."""

    id: str
    role: Literal["assistant"]
    content: list[ContentOut]
    model: str
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: UsageOut


class CountTokensOut(msgspec.Struct):
    """The answer of ``POST /v1/messages/count_tokens``."""

    input_tokens: int


# --- stream events -------------------------------------------------------------


class TextDelta(msgspec.Struct, tag="text_delta", tag_field="type"):
    """More text of a text block."""

    text: str


class ThinkingDelta(msgspec.Struct, tag="thinking_delta", tag_field="type"):
    """More reasoning of a thinking block."""

    thinking: str


class InputJsonDelta(msgspec.Struct, tag="input_json_delta", tag_field="type"):
    """More of a tool_use block's ``input``, as JSON text."""

    partial_json: str


class MessageStart(msgspec.Struct, tag="message_start", tag_field="type"):
    """The first event: the message with no content yet."""

    message: MessageOut


class ContentBlockStart(msgspec.Struct, tag="content_block_start", tag_field="type"):
    """A content block begins (empty)."""

    index: int
    content_block: ContentOut


class ContentBlockDelta(msgspec.Struct, tag="content_block_delta", tag_field="type"):
    """More of block ``index``."""

    index: int
    delta: TextDelta | ThinkingDelta | InputJsonDelta


class ContentBlockStop(msgspec.Struct, tag="content_block_stop", tag_field="type"):
    """Block ``index`` is complete."""

    index: int


class StopOut(msgspec.Struct):
    """``delta`` of ``message_delta``: how the message ended."""

    stop_reason: StopReason
    stop_sequence: str | None


class MessageDelta(msgspec.Struct, tag="message_delta", tag_field="type"):
    """The end of the message: stop reason and final (cumulative) usage."""

    delta: StopOut
    usage: UsageOut


class MessageStop(msgspec.Struct, tag="message_stop", tag_field="type"):
    """The last event."""


class Ping(msgspec.Struct, tag="ping", tag_field="type"):
    """Keeps the connection warm."""


class ErrorOut(msgspec.Struct):
    """``error`` of an error body."""

    type: str
    message: str


class ErrorBody(msgspec.Struct, tag="error", tag_field="type"):
    """An error response, or an ``error`` stream event."""

    error: ErrorOut
    request_id: str | None = None


Event = (
    MessageStart
    | ContentBlockStart
    | ContentBlockDelta
    | ContentBlockStop
    | MessageDelta
    | MessageStop
    | Ping
    | ErrorBody
)


def sse(event: Event) -> bytes:
    """One SSE event as Anthropic frames it."""
    name = type(event).__struct_config__.tag
    return b"event: " + str(name).encode() + b"\ndata: " + encoder.encode(event) + b"\n\n"
