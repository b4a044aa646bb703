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

from bodega.openai.models import ObjectList
from bodega.openai.responses import ChatCompletion
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


DocumentList = ObjectList[DocumentMeta]  # GET /v1/rag/documents


class Deleted(msgspec.Struct):
    """``DELETE /v1/rag/documents/{file_id}``."""

    file_id: str
    deleted: bool = True
    object: str = "rag.document"


class RagAnswer(ChatCompletion, kw_only=True):
    """A non-streaming query answer: a chat completion plus its sources."""

    file_id: str
    answer: str
    sources: list[Hit]
