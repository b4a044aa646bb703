"""OpenAI response bodies as msgspec Structs, and their encoder."""

from __future__ import annotations

import msgspec

encoder = msgspec.json.Encoder()


class PromptTokensDetails(msgspec.Struct):
    """``usage.prompt_tokens_details``."""

    cached_tokens: int = 0


class UsageOut(msgspec.Struct):
    """``usage`` of a completion."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails


class FunctionCallOut(msgspec.Struct, omit_defaults=True):
    """``tool_calls[].function``; in stream chunks each field is optional."""

    name: str | None = None
    arguments: str | None = None


class ToolCallOut(msgspec.Struct):
    """A complete tool call of an assistant message."""

    id: str
    function: FunctionCallOut
    type: str = "function"


class ToolCallChunk(msgspec.Struct, omit_defaults=True):
    """A piece of a streamed tool call: ``id``/``type``/name come first."""

    index: int
    id: str | None = None
    type: str | None = None
    function: FunctionCallOut | None = None


class TopLogprobOut(msgspec.Struct):
    """``top_logprobs[]`` of a chat token."""

    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprobOut(msgspec.Struct):
    """``logprobs.content[]``: one generated token."""

    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprobOut]


class ChoiceLogprobs(msgspec.Struct):
    """``choices[].logprobs`` of a chat completion or chunk."""

    content: list[TokenLogprobOut]


class AssistantMessage(msgspec.Struct, omit_defaults=True):
    """``choices[].message`` of a chat completion."""

    role: str
    content: str | None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallOut] | None = None


class ChatChoice(msgspec.Struct):
    """One choice of a chat completion."""

    index: int
    message: AssistantMessage
    finish_reason: str | None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(msgspec.Struct):
    """``object: chat.completion``."""

    id: str
    created: int
    model: str
    choices: list[ChatChoice]
    usage: UsageOut
    object: str = "chat.completion"
    system_fingerprint: str | None = None


class ChoiceDelta(msgspec.Struct, omit_defaults=True):
    """``choices[].delta`` of a chat chunk."""

    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallChunk] | None = None


class ChatChunkChoice(msgspec.Struct):
    """One choice of a chat chunk."""

    index: int
    delta: ChoiceDelta
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(msgspec.Struct):
    """``object: chat.completion.chunk``; ``usage`` only on the last one."""

    id: str
    created: int
    model: str
    choices: list[ChatChunkChoice]
    object: str = "chat.completion.chunk"
    system_fingerprint: str | None = None
    usage: UsageOut | None = None


class CompletionLogprobs(msgspec.Struct):
    """``choices[].logprobs`` of a legacy text completion."""

    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None
    text_offset: list[int]


class CompletionChoice(msgspec.Struct):
    """One choice of a text completion (or chunk)."""

    index: int
    text: str
    finish_reason: str | None = None
    logprobs: CompletionLogprobs | None = None


class TextCompletion(msgspec.Struct):
    """``object: text_completion``, full or as a stream chunk."""

    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    object: str = "text_completion"
    system_fingerprint: str | None = None
    usage: UsageOut | None = None
