"""OpenAI request bodies as msgspec Structs (decoding = validation).

Unknown fields are accepted and ignored, as the OpenAI API does; known fields
of the wrong type or out of range are a 400 naming the field. Fields that a
later capability will honour are declared so that using them is refused with a
clear message instead of being silently ignored (see ``unsupported_fields``).
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


class ChatMessageIn(msgspec.Struct):
    """A chat message as clients send it."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: Any = None
    tool_call_id: str | None = None


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
    n: PositiveInt = 1
    user: str | None = None


class ChatCompletionRequest(SamplingFields, kw_only=True):
    """``POST /v1/chat/completions``."""

    model: str
    messages: Annotated[list[ChatMessageIn], Meta(min_length=1)]
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    # Refused until their capability lands (tool calling, structured outputs...).
    tools: Any = None
    tool_choice: Any = None
    parallel_tool_calls: Any = None
    response_format: Any = None
    logprobs: Any = None
    top_logprobs: Any = None
    logit_bias: Any = None
    chat_template_kwargs: Any = None


class CompletionRequest(SamplingFields, kw_only=True):
    """``POST /v1/completions`` (legacy prompt completions)."""

    model: str
    prompt: str | list[str]
    max_tokens: PositiveInt | None = 16
    echo: bool = False
    suffix: str | None = None
    best_of: PositiveInt | None = None
    logprobs: Any = None
    logit_bias: Any = None


def unsupported_fields(request: msgspec.Struct, names: tuple[str, ...]) -> list[str]:
    """The names among ``names`` that the request sets to something non-null."""
    return [name for name in names if getattr(request, name) not in (None, False)]
