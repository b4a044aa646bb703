"""Wire types of ``/v1/embeddings`` and ``/v1/rerank``.

``/v1/embeddings`` follows the OpenAI API plus the LLM Service docs' BGE-M3
extras (``embedding_type``, ``return_sparse``) and ``truncate``.
``/v1/rerank`` answers in two shapes at once: the LLM Service's ``data``
(``index``, ``score``, ``document`` as a string) and Jina/Cohere's
``results`` (``index``, ``relevance_score``, ``document: {text}``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from bodega.registry.priority import PriorityField

MAX_INPUTS = 2048
MAX_DOCUMENTS = 1000

EmbeddingType = Literal["dense", "sparse", "colbert"]


class EmbeddingRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/embeddings``; ``input`` is checked by ``services.embeddings``
    (a string, strings, token ids, or lists of token ids)."""

    model: str
    input: str | list[Any]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Meta(ge=1)] | None = None
    user: str | None = None
    truncate: bool = False
    embedding_type: EmbeddingType = "dense"
    return_sparse: bool = False
    # Ollama's, as on chat completions (bodega.registry.keep_alive).
    keep_alive: float | str | None = None
    priority: PriorityField = None  # as on chat (bodega.registry.priority)


class EmbeddingUsage(msgspec.Struct):
    """``usage`` of embeddings and rerank answers."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingItem(msgspec.Struct, omit_defaults=True):
    """One input's embedding: floats, base64 (little-endian float32) or,
    for colbert, one vector per token."""

    index: int
    embedding: list[float] | str | list[list[float]]
    object: Literal["embedding"]
    sparse_embedding: dict[str, float] | None = None


class EmbeddingList(msgspec.Struct):
    """The ``/v1/embeddings`` answer."""

    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingUsage
    object: str = "list"


class RerankDocument(msgspec.Struct):
    """A document given as an object (Cohere/Jina style)."""

    text: str


class RerankRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/rerank``; ``top_k`` (LLM Service) and ``top_n`` (Cohere,
    Jina) both bound how many results come back."""

    model: str
    query: str
    documents: Annotated[list[str | RerankDocument], Meta(min_length=1, max_length=MAX_DOCUMENTS)]
    top_k: Annotated[int, Meta(ge=1)] | None = None
    top_n: Annotated[int, Meta(ge=1)] | None = None
    return_documents: bool = True
    keep_alive: float | str | None = None  # as on /v1/embeddings
    priority: PriorityField = None


class RerankItem(msgspec.Struct, omit_defaults=True):
    """One result in the LLM Service shape."""

    index: int
    score: float
    document: str | None = None


class RerankResultItem(msgspec.Struct, omit_defaults=True):
    """One result in the Jina/Cohere shape."""

    index: int
    relevance_score: float
    document: RerankDocument | None = None


class RerankResponse(msgspec.Struct):
    """The ``/v1/rerank`` answer, sorted by score (highest first)."""

    model: str
    data: list[RerankItem]
    results: list[RerankResultItem]
    usage: EmbeddingUsage
    object: str = "list"
    id: str = ""
