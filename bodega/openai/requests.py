"""OpenAI request bodies as msgspec Structs (decoding = validation).

Every top-level field of OpenAI's chat and legacy completions requests is
declared here, typed, plus the vendor extensions Bodega honours; known fields
of the wrong type or out of range are a 400 naming the field. What Bodega does
with each declared field (honoured, no effect, refused unless default) is the
table in ``bodega.openai.field_policy``, which also logs fields declared
nowhere. Decoding these Structs directly still ignores unknown fields.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from bodega.orchestration.config import Mode, OrchestrationIn
from bodega.registry.priority import PriorityField

Temperature = Annotated[float, Meta(ge=0.0, le=2.0)]
Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
Penalty = Annotated[float, Meta(ge=-2.0, le=2.0)]
PositiveInt = Annotated[int, Meta(ge=1)]
# Seconds, or a duration string ("30s", "5m", "1h"); checked by bodega.registry.keep_alive.
KeepAlive = float | str | None


class StreamOptions(msgspec.Struct):
    """``stream_options`` of chat and completions. ``include_obfuscation``
    has no effect: Bodega's stream chunks carry no padding."""

    include_usage: bool = False
    include_obfuscation: bool | None = None


class ImageUrl(msgspec.Struct):
    """``image_url`` of an image part: an https:, http: or base64 data: URL."""

    url: str
    detail: Literal["auto", "low", "high"] = "auto"


class ContentPart(msgspec.Struct):
    """One part of a message's content list."""

    type: str
    text: str | None = None
    image_url: ImageUrl | None = None
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
    """``response_format``: free text, any JSON object, or JSON of a schema.
    ``schema`` is llama.cpp's extension: ``{"type": "json_object", "schema":
    {...}}`` constrains the object to that schema."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaIn | None = None
    schema: dict[str, Any] | None = None


class AudioVoice(msgspec.Struct):
    """A custom voice of ``audio.voice``."""

    id: str


class AudioOutput(msgspec.Struct):
    """``audio``: spoken output (refused: the models here answer in text)."""

    format: Literal["wav", "aac", "mp3", "flac", "opus", "pcm16"]
    voice: str | AudioVoice


class PredictionIn(msgspec.Struct):
    """``prediction``: OpenAI's Predicted Outputs, a latency hint."""

    content: str | list[ContentPart]
    type: Literal["content"] = "content"


class ModerationMode(msgspec.Struct):
    """``moderation.policy.input`` / ``.output``."""

    mode: Literal["score", "block"]


class ModerationPolicy(msgspec.Struct):
    """``moderation.policy``."""

    input: ModerationMode | None = None
    output: ModerationMode | None = None


class ModerationIn(msgspec.Struct):
    """``moderation``: run a moderation model on input and output (refused)."""

    model: str
    policy: ModerationPolicy | None = None


class PromptCacheOptions(msgspec.Struct):
    """``prompt_cache_options`` (no effect: Bodega caches prompt prefixes on
    its own). ``ttl`` is a string so a new OpenAI lifetime is no 400."""

    mode: Literal["implicit", "explicit"] | None = None
    ttl: str | None = None


class WebSearchOptions(msgspec.Struct):
    """``web_search_options`` (refused: the models here cannot search)."""

    search_context_size: Literal["low", "medium", "high"] | None = None
    user_location: dict[str, Any] | None = None


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


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
    # Extensions of llama.cpp's and vLLM's servers: decode past end of
    # sequence; no end of sequence before ``min_tokens`` tokens.
    ignore_eos: bool = False
    min_tokens: Annotated[int, Meta(ge=0)] = 0
    # Ollama's: how long the model stays loaded once idle (seconds, a
    # duration string such as "5m", negative: forever; bodega.registry.keep_alive).
    keep_alive: KeepAlive = None
    # Admission order (bodega.registry.priority): 0-9 or a name; higher first.
    priority: PriorityField = None


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
    reasoning_effort: ReasoningEffort | None = None
    # inference-service's: answer through several models (bodega.orchestration).
    orchestration_mode: Mode | None = None
    orchestration: OrchestrationIn | None = None
    # inference-service's task routing: a catalog role when ``model`` is "auto".
    task_type: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    # Deprecated forms of tools / tool_choice.
    functions: list[FunctionIn] | None = None
    function_call: Literal["none", "auto"] | NamedFunction | None = None
    # Accepted with no effect here (see field_policy).
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: PromptCacheOptions | None = None
    prediction: PredictionIn | None = None
    # Refused unless default (see field_policy).
    audio: AudioOutput | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    moderation: ModerationIn | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    web_search_options: WebSearchOptions | None = None


class CompletionRequest(SamplingFields, kw_only=True):
    """``POST /v1/completions`` (legacy prompt completions)."""

    model: str
    prompt: str | list[str]
    # Left out (UNSET): the model's ``defaults.max_tokens``, else OpenAI's 16.
    max_tokens: PositiveInt | msgspec.UnsetType | None = msgspec.UNSET
    echo: bool = False
    suffix: str | None = None
    best_of: PositiveInt | None = None
    logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    logit_bias: dict[str, Annotated[float, Meta(ge=-100, le=100)]] | None = None

    @property
    def token_limit(self) -> int | None:
        """``max_tokens``, OpenAI's 16 when the request leaves it out."""
        return 16 if isinstance(self.max_tokens, msgspec.UnsetType) else self.max_tokens
