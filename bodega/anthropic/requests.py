"""Anthropic Messages request bodies as msgspec Structs (decoding = validation).

Unknown fields are ignored, as Anthropic's clients send fields of newer API
versions; every known field is typed, so a wrong type or value is a 400 naming
it. Fields that would change the answer but cannot be honoured here are
declared so that ``convert`` can refuse them by name. Content blocks are tagged
unions on ``type``: a block type not listed (``document``, ``search_result``,
server tools...) is a 400 naming its ``type``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

Unit = Annotated[float, Meta(ge=0.0, le=1.0)]
ToolName = Annotated[str, Meta(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]


class CacheControl(msgspec.Struct):
    """``cache_control`` of a block: Bodega caches prompt prefixes by itself."""

    type: str = "ephemeral"
    ttl: str | None = None


class TextBlock(msgspec.Struct, tag="text", tag_field="type"):
    """A text block (``citations`` of an answer sent back are ignored)."""

    text: str
    cache_control: CacheControl | None = None


class Base64Source(msgspec.Struct, tag="base64", tag_field="type"):
    """An image's bytes, base64-encoded."""

    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str


class UrlSource(msgspec.Struct, tag="url", tag_field="type"):
    """An image named by an https: or http: URL (fetched under the server's policy)."""

    url: str


class ImageBlock(msgspec.Struct, tag="image", tag_field="type"):
    """An image block (multimodal models only)."""

    source: Base64Source | UrlSource
    cache_control: CacheControl | None = None


class ToolUseBlock(msgspec.Struct, tag="tool_use", tag_field="type"):
    """A past call of the assistant: ``input`` is the arguments object."""

    id: str
    name: str
    input: dict[str, Any]
    cache_control: CacheControl | None = None


class ToolResultBlock(msgspec.Struct, tag="tool_result", tag_field="type"):
    """The result of call ``tool_use_id``, sent in a user turn."""

    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] = ""
    is_error: bool = False
    cache_control: CacheControl | None = None


class ThinkingBlock(msgspec.Struct, tag="thinking", tag_field="type"):
    """A past answer's reasoning (its ``signature`` is not checked)."""

    thinking: str
    signature: str = ""


class RedactedThinkingBlock(msgspec.Struct, tag="redacted_thinking", tag_field="type"):
    """Encrypted reasoning of Anthropic's models: no local model can read it."""

    data: str


Block = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock
InputBlock = Block | RedactedThinkingBlock


class MessageIn(msgspec.Struct):
    """One turn; a string ``content`` is one text block."""

    role: Literal["user", "assistant"]
    content: str | list[InputBlock]


class ToolIn(msgspec.Struct):
    """A client tool. Anthropic's server tools (``web_search_...``) have another
    ``type`` and no ``input_schema``: refused."""

    name: ToolName
    input_schema: dict[str, Any]
    description: str | None = None
    type: Literal["custom"] | None = None
    strict: bool | None = None
    cache_control: CacheControl | None = None


class ToolChoiceAuto(msgspec.Struct, tag="auto", tag_field="type"):
    """The model decides whether to call tools."""

    disable_parallel_tool_use: bool = False


class ToolChoiceAny(msgspec.Struct, tag="any", tag_field="type"):
    """The model must call one of the tools."""

    disable_parallel_tool_use: bool = False


class ToolChoiceTool(msgspec.Struct, tag="tool", tag_field="type"):
    """The model must call the tool ``name``."""

    name: str
    disable_parallel_tool_use: bool = False


class ToolChoiceNone(msgspec.Struct, tag="none", tag_field="type"):
    """The model may not call tools."""


ToolChoice = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone


class ThinkingEnabled(msgspec.Struct, tag="enabled", tag_field="type"):
    """Reasoning on, within ``budget_tokens`` (less than ``max_tokens``)."""

    budget_tokens: Annotated[int, Meta(ge=1)]
    display: Literal["summarized", "omitted"] | None = None


class ThinkingAdaptive(msgspec.Struct, tag="adaptive", tag_field="type"):
    """Reasoning on; the model decides how much."""

    display: Literal["summarized", "omitted"] | None = None


class ThinkingDisabled(msgspec.Struct, tag="disabled", tag_field="type"):
    """Reasoning off (a chat template's thinking switch is turned off)."""


Thinking = ThinkingEnabled | ThinkingAdaptive | ThinkingDisabled


class JsonOutputFormat(msgspec.Struct, tag="json_schema", tag_field="type"):
    """``output_config.format``: the answer is JSON valid against ``schema``."""

    schema: dict[str, Any]


class OutputConfig(msgspec.Struct):
    """``output_config``: the effort (a template's ``reasoning_effort``) and format."""

    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: JsonOutputFormat | None = None


class Metadata(msgspec.Struct):
    """``metadata`` (no effect on the answer)."""

    user_id: str | None = None


class CountTokensRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/messages/count_tokens``: what the prompt is made of."""

    model: str
    messages: Annotated[list[MessageIn], Meta(min_length=1)]
    system: str | list[TextBlock] | None = None
    tools: list[ToolIn] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    output_config: OutputConfig | None = None
    # Would change the answer, and cannot be honoured here: refused when set.
    mcp_servers: list[Any] | None = None
    container: Any = None
    context_management: Any = None


class MessagesRequest(CountTokensRequest, kw_only=True):
    """``POST /v1/messages``."""

    max_tokens: Annotated[int, Meta(ge=1)]
    temperature: Unit | None = None
    top_p: Unit | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    metadata: Metadata | None = None
    # No effect: one tier, one speed, one place, prompt prefixes cached by themselves.
    service_tier: str | None = None
    speed: str | None = None
    inference_geo: str | None = None
    cache_control: CacheControl | None = None
