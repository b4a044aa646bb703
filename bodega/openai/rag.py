"""Wire types of ``/v1/rag/*``.

A non-streaming query answers a ``chat.completion`` with the document's
``file_id``, the ``answer`` text and the ``sources`` it was grounded in; a
streaming one sends ``chat.completion.chunk`` events and ``data: [DONE]``,
exactly as ``/v1/chat/completions`` does.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from bodega.services.rag.store import DocumentMeta, Hit


class StreamOptions(msgspec.Struct):
    """``stream_options`` as in chat completions."""

    include_usage: bool = False


class RagQueryRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/rag/query``."""

    file_id: str
    query: Annotated[str, Meta(min_length=1, max_length=20_000)]
    model: str = "current"
    top_k: Annotated[int, Meta(ge=1, le=50)] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, Meta(ge=1)] | None = None
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] | None = None
    seed: int | None = None


class UploadResponse(msgspec.Struct):
    """``POST /v1/rag/upload``'s answer."""

    file_id: str
    filename: str
    num_chunks: int
    status: str = "indexed"


class DocumentList(msgspec.Struct):
    """``GET /v1/rag/documents``."""

    data: list[DocumentMeta]
    object: str = "list"


class Deleted(msgspec.Struct):
    """``DELETE /v1/rag/documents/{file_id}``."""

    file_id: str
    deleted: bool = True
    object: str = "rag.document"


class Usage(msgspec.Struct):
    """``usage`` as chat completions report it."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Message(msgspec.Struct):
    """The assistant's answer."""

    role: str
    content: str


class Choice(msgspec.Struct):
    """The one choice of a query answer."""

    index: int
    message: Message
    finish_reason: str
    logprobs: None = None


class RagAnswer(msgspec.Struct):
    """A non-streaming query answer: a chat completion plus its sources."""

    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    file_id: str
    answer: str
    sources: list[Hit]
    object: str = "chat.completion"


class Delta(msgspec.Struct, omit_defaults=True):
    """``choices[].delta`` of a chunk."""

    role: str | None = None
    content: str | None = None


class ChunkChoice(msgspec.Struct):
    """One choice of a chunk."""

    index: int
    delta: Delta
    finish_reason: str | None = None
    logprobs: None = None


class Chunk(msgspec.Struct):
    """``chat.completion.chunk``; ``usage`` only on the last one."""

    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    object: str = "chat.completion.chunk"
    usage: Usage | None = None
