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


class AssistantMessage(msgspec.Struct):
    """``choices[].message`` of a chat completion."""

    role: str
    content: str | None


class ChatChoice(msgspec.Struct):
    """One choice of a chat completion."""

    index: int
    message: AssistantMessage
    finish_reason: str | None
    logprobs: None = None


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


class ChatChunkChoice(msgspec.Struct):
    """One choice of a chat chunk."""

    index: int
    delta: ChoiceDelta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(msgspec.Struct):
    """``object: chat.completion.chunk``; ``usage`` only on the last one."""

    id: str
    created: int
    model: str
    choices: list[ChatChunkChoice]
    object: str = "chat.completion.chunk"
    system_fingerprint: str | None = None
    usage: UsageOut | None = None


class CompletionChoice(msgspec.Struct):
    """One choice of a text completion (or chunk)."""

    index: int
    text: str
    finish_reason: str | None = None
    logprobs: None = None


class TextCompletion(msgspec.Struct):
    """``object: text_completion``, full or as a stream chunk."""

    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    object: str = "text_completion"
    system_fingerprint: str | None = None
    usage: UsageOut | None = None
