"""OpenAI Responses API bodies as msgspec Structs: the request, its input items,
and the response with its output items (the shapes the official SDK parses).

Input and output items share their Structs: a stored conversation is the
input items and output items of its turns, in order, all of the same union.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from bodega.openai.requests import Probability, Temperature

Status = Literal["in_progress", "completed", "incomplete"]


# --- items ------------------------------------------------------------------


class InputText(msgspec.Struct, tag="input_text", tag_field="type"):
    """Text a user, system or developer message carries."""

    text: str


class InputImage(msgspec.Struct, tag="input_image", tag_field="type", omit_defaults=True):
    """An image by URL (https: or a base64 data: URL)."""

    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["auto", "low", "high"] = "auto"


class TopLogprob(msgspec.Struct):
    """One alternative of a generated token."""

    token: str
    logprob: float
    bytes: list[int] | None = None


class TextLogprob(msgspec.Struct):
    """A generated token's log-probability and its ``top_logprobs``."""

    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = []


class OutputText(msgspec.Struct, tag="output_text", tag_field="type"):
    """Text an assistant message carries."""

    text: str
    annotations: list[Any] = []
    logprobs: list[TextLogprob] | None = None


class Refusal(msgspec.Struct, tag="refusal", tag_field="type"):
    """An assistant's refusal (only ever given back as input)."""

    refusal: str


ContentPart = InputText | InputImage | OutputText | Refusal


class MessageItem(msgspec.Struct, tag="message", tag_field="type", kw_only=True):
    """A message: input from a user, system or developer, or the assistant's answer."""

    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    id: str | None = None
    status: Status | None = None


class FunctionCallItem(msgspec.Struct, tag="function_call", tag_field="type", kw_only=True):
    """A call of a function tool the model made; ``arguments`` is JSON text."""

    call_id: str
    name: str
    arguments: str
    id: str | None = None
    status: Status | None = None


class OutputTextPart(msgspec.Struct):
    """A text part of a function call's output given as a list."""

    type: str
    text: str | None = None


class FunctionCallOutputItem(
    msgspec.Struct, tag="function_call_output", tag_field="type", kw_only=True
):
    """The result of a function call, given back to the model."""

    call_id: str
    output: str | list[OutputTextPart]
    id: str | None = None
    status: Status | None = None


class SummaryText(msgspec.Struct, tag="summary_text", tag_field="type"):
    """A reasoning summary's text."""

    text: str


class ReasoningText(msgspec.Struct, tag="reasoning_text", tag_field="type"):
    """The model's reasoning, as it thought it."""

    text: str


class ReasoningItem(msgspec.Struct, tag="reasoning", tag_field="type", kw_only=True):
    """The model's reasoning before its answer. ``encrypted_content`` (with
    ``include: ["reasoning.encrypted_content"]``) carries the reasoning text
    opaquely so that a stateless client (``store: false``) can give it back."""

    id: str | None = None
    summary: list[SummaryText] = []
    content: list[ReasoningText] | None = None
    encrypted_content: str | None = None
    status: Status | None = None


Item = MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem


# --- the request ----------------------------------------------------------------


class TextFormat(msgspec.Struct, kw_only=True):
    """``text.format``: free text, a JSON object, or JSON valid against ``schema``."""

    type: Literal["text", "json_object", "json_schema"]
    name: Annotated[str, Meta(pattern=r"^[a-zA-Z0-9_-]{1,64}$")] | None = None
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class TextConfig(msgspec.Struct, kw_only=True):
    """``text``: the answer's format; ``verbosity`` other than medium is refused."""

    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningConfig(msgspec.Struct, kw_only=True):
    """``reasoning``: how hard to think, and the summary (see ``ReasoningItem``)."""

    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class StreamOptions(msgspec.Struct):
    """``stream_options`` (no effect: events carry no obfuscation padding)."""

    include_obfuscation: bool | None = None


Metadata = Annotated[
    dict[Annotated[str, Meta(max_length=64)], Annotated[str, Meta(max_length=512)]],
    Meta(max_length=16),
]


class CreateResponse(msgspec.Struct, kw_only=True):
    """``POST /v1/responses``. ``input`` and ``tools`` are checked item by item
    (``bodega.responses.inputs``) so that a 400 names the item at fault."""

    model: str
    input: str | list[dict[str, Any]] = []
    instructions: str | None = None
    previous_response_id: str | None = None
    max_output_tokens: Annotated[int, Meta(ge=1)] | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] = []
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_tool_calls: Annotated[int, Meta(ge=1)] | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    include: list[str] = []
    truncation: Literal["auto", "disabled"] | None = None
    metadata: Metadata | None = None
    user: str | None = None
    store: bool = True
    background: bool = False
    stream: bool = False
    stream_options: StreamOptions | None = None
    # Accepted with no effect: Bodega caches prompt prefixes on its own and
    # has one service tier.
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    safety_identifier: str | None = None
    # Refused when set: server-side conversations and stored prompts.
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None


# --- the response -------------------------------------------------------------


class InputTokensDetails(msgspec.Struct):
    """Prompt tokens read from the prompt cache."""

    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(msgspec.Struct):
    """Generated tokens spent on reasoning."""

    reasoning_tokens: int = 0


class ResponseUsage(msgspec.Struct):
    """Token accounting over every generation of the response."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputTokensDetails = msgspec.field(default_factory=InputTokensDetails)
    output_tokens_details: OutputTokensDetails = msgspec.field(default_factory=OutputTokensDetails)


class ResponseError(msgspec.Struct):
    """Why a response failed."""

    code: str
    message: str


class IncompleteDetails(msgspec.Struct):
    """Why a response stopped early."""

    reason: Literal["max_output_tokens", "max_tool_calls"]


ResponseStatus = Literal["completed", "failed", "in_progress", "cancelled", "queued", "incomplete"]


class Response(msgspec.Struct, kw_only=True):
    """A response, as created, streamed, stored and retrieved."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: ResponseStatus
    model: str
    output: list[Item] = []
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    metadata: dict[str, str] = {}
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: ReasoningConfig | None = None
    store: bool = True
    background: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_logprobs: int | None = None
    text: TextConfig = msgspec.field(
        default_factory=lambda: TextConfig(format=TextFormat(type="text"))
    )
    tool_choice: str | dict[str, Any] = "auto"
    tools: list[dict[str, Any]] = []
    truncation: Literal["auto", "disabled"] = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None
    completed_at: int | None = None


class DeletedResponse(msgspec.Struct):
    """``DELETE /v1/responses/{id}``."""

    id: str
    object: Literal["response"] = "response"
    deleted: bool = True


class InputItemList(msgspec.Struct, kw_only=True):
    """``GET /v1/responses/{id}/input_items``: one page."""

    object: Literal["list"] = "list"
    data: list[Item]
    first_id: str | None
    last_id: str | None
    has_more: bool
