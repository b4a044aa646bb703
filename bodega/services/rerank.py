"""Reranking: score documents against a query on a rerank model's handler."""

from __future__ import annotations

from dataclasses import dataclass

from bodega.errors import HandlerFailed
from bodega.registry.model import Model
from ipc.messages import Rerank, RerankResult


@dataclass
class Ranked:
    """One document's place: its index in the request and its score."""

    index: int
    score: float


async def rerank(model: Model, query: str, documents: list[str]) -> tuple[list[Ranked], int]:
    """The documents sorted by score (highest first, ties by index) and the
    number of tokens the model read (``model`` is a rerank model)."""
    result = await model.call(
        Rerank(req_id=0, query=query, documents=documents), expect=RerankResult
    )
    if len(result.scores) != len(documents):
        raise HandlerFailed("The model scored the wrong number of documents.")
    ranked = [Ranked(i, s) for i, s in enumerate(result.scores)]
    ranked.sort(key=lambda r: (-r.score, r.index))
    return ranked, result.prompt_tokens
