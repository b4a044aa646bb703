"""OpenAI request bodies as msgspec Structs (decoding = validation).

Unknown fields are accepted and ignored, as the OpenAI API does; known fields
of the wrong type or out of range are a 400 naming the field. Fields that a
later capability will honour are declared so that using them is refused with a
clear message instead of being silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

Temperature = Annotated[float, Meta(ge=0.0, le=2.0)]
Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
Penalty = Annotated[float, Meta(ge=-2.0, le=2.0)]
PositiveInt = Annotated[int, Meta(ge=1)]


class StreamOptions(msgspec.Struct):
    """``stream_options`` of chat and completions."""

    include_usage: bool = False


class ContentPart(msgspec.Struct):
    """One part of a message's content list."""

    type: str
    text: str | None = None
    image_url: Any = None
    input_audio: Any = None


class FunctionCallIn(msgspec.Struct):
    """``function`` of a past tool call; ``arguments`` is JSON text."""

    name: str
    arguments: str = "{}"


class ToolCallIn(msgspec.Struct):
    """A tool call of a past assistant message."""

    id: str
    function: FunctionCallIn
    type: Literal["function"] = "function"


class ChatMessageIn(msgspec.Struct):
    """A chat message as clients send it."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None


FunctionName = Annotated[str, Meta(pattern=r"^[a-zA-Z0-9_.-]{1,64}$")]


class FunctionIn(msgspec.Struct):
    """``tools[].function``: a function the model may call."""

    name: FunctionName
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolIn(msgspec.Struct):
    """One entry of ``tools``."""

    function: FunctionIn
    type: Literal["function"] = "function"


class NamedFunction(msgspec.Struct):
    """``tool_choice.function``."""

    name: str


class NamedToolChoice(msgspec.Struct):
    """``tool_choice`` naming the one function to call."""

    function: NamedFunction
    type: Literal["function"] = "function"


class JsonSchemaIn(msgspec.Struct):
    """``response_format.json_schema``."""

    name: Annotated[str, Meta(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(msgspec.Struct):
    """``response_format``: free text, any JSON object, or JSON of a schema."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaIn | None = None


class SamplingFields(msgspec.Struct, kw_only=True):
    """Sampling parameters shared by chat and completions."""

    temperature: Temperature | None = None
    top_p: Probability | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None
    min_p: Probability | None = None
    seed: int | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    repetition_penalty: Annotated[float, Meta(gt=0.0)] | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Annotated[int, Meta(ge=1, le=16)] = 1
    user: str | None = None


class ChatCompletionRequest(SamplingFields, kw_only=True):
    """``POST /v1/chat/completions``."""

    model: str
    messages: Annotated[list[ChatMessageIn], Meta(min_length=1)]
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    tools: list[ToolIn] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    logit_bias: dict[str, Annotated[float, Meta(ge=-100, le=100)]] | None = None
    chat_template_kwargs: dict[str, Any] | None = None


class CompletionRequest(SamplingFields, kw_only=True):
    """``POST /v1/completions`` (legacy prompt completions)."""

    model: str
    prompt: str | list[str]
    max_tokens: PositiveInt | None = 16
    echo: bool = False
    suffix: str | None = None
    best_of: PositiveInt | None = None
    logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    logit_bias: dict[str, Annotated[float, Meta(ge=-100, le=100)]] | None = None
