"""``POST /v1/embeddings`` and ``POST /v1/rerank``."""

from __future__ import annotations

import secrets

import pybase64
from quart import Blueprint, Response, current_app

from bodega.errors import InvalidRequest
from bodega.openai.embeddings import (
    EmbeddingItem,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    RerankDocument,
    RerankItem,
    RerankRequest,
    RerankResponse,
    RerankResultItem,
)
from bodega.runtime_config import execution_limit
from bodega.services.embeddings import (
    EmbeddingResult,
    check_size,
    embed,
    parse_input,
    row_bytes,
    vectors_as_floats,
)
from bodega.services.rerank import rerank
from bodega.settings import Settings

from .common import decode_json, json_response, registry

blueprint = Blueprint("embeddings", __name__)


def embedding_items(result: EmbeddingResult, encoding: str) -> list[EmbeddingItem]:
    """One item per input: floats, base64 or (colbert) a vector per token."""
    sparse = result.sparse or []
    items: list[EmbeddingItem] = []
    if result.counts:  # multi-vector: ``counts[i]`` rows belong to input i
        rows = vectors_as_floats(result)
        start = 0
        for i, count in enumerate(result.counts):
            items.append(
                EmbeddingItem(index=i, object="embedding", embedding=rows[start : start + count])
            )
            start += count
    elif result.rows == 0 and sparse:  # sparse only: no dense vectors
        items = [
            EmbeddingItem(index=i, object="embedding", embedding=[]) for i in range(len(sparse))
        ]
    elif encoding == "base64":
        items = [
            EmbeddingItem(
                index=i,
                object="embedding",
                embedding=pybase64.b64encode(row_bytes(result, i)).decode(),
            )
            for i in range(result.rows)
        ]
    else:
        items = [
            EmbeddingItem(index=i, object="embedding", embedding=row)
            for i, row in enumerate(vectors_as_floats(result))
        ]
    for i, weights in enumerate(sparse):
        if i < len(items):
            items[i].sparse_embedding = {str(k): v for k, v in weights.items()}
    return items


@blueprint.post("/v1/embeddings")
async def embeddings() -> Response:
    """OpenAI embeddings (plus ``truncate`` and the BGE-M3 extras)."""
    body = await decode_json(EmbeddingRequest)
    inputs = parse_input(body.input)
    if body.embedding_type == "colbert" and body.encoding_format == "base64":
        raise InvalidRequest(
            "colbert embeddings come as lists of vectors; use encoding_format float",
            param="encoding_format",
        )
    model = await registry().find(body.model, kinds=("embeddings",), keep_alive=body.keep_alive)
    settings: Settings = current_app.extensions["bodega.settings"]
    with execution_limit(settings.runtime.embedding_timeout_sec, "the embeddings request"):
        result = await embed(
            model,
            inputs,
            truncate=body.truncate,
            dimensions=body.dimensions,
            embedding_type=body.embedding_type,
            return_sparse=body.return_sparse,
        )
    usage = EmbeddingUsage(prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens)
    return json_response(
        EmbeddingList(
            data=embedding_items(result, body.encoding_format), model=model.id, usage=usage
        )
    )


@blueprint.post("/v1/rerank")
async def rerank_documents() -> Response:
    """Documents sorted by relevance to the query, in two response shapes."""
    body = await decode_json(RerankRequest)
    texts = [d if isinstance(d, str) else d.text for d in body.documents]
    check_size([body.query, *texts], "documents")
    limit = body.top_n or body.top_k or len(texts)
    model = await registry().find(body.model, kinds=("rerank",), keep_alive=body.keep_alive)
    ranked, tokens = await rerank(model, body.query, texts)
    top = ranked[:limit]
    keep = body.return_documents
    return json_response(
        RerankResponse(
            id=f"rerank-{secrets.token_hex(12)}",
            model=model.id,
            data=[
                RerankItem(index=r.index, score=r.score, document=texts[r.index] if keep else None)
                for r in top
            ],
            results=[
                RerankResultItem(
                    index=r.index,
                    relevance_score=r.score,
                    document=RerankDocument(text=texts[r.index]) if keep else None,
                )
                for r in top
            ],
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )
    )
