"""Reranking: score documents against a query on a rerank model's handler."""

from __future__ import annotations

from dataclasses import dataclass

from bodega.errors import HandlerFailed
from bodega.registry.registry import Model
from bodega.services.generation import error_from_failed
from ipc.messages import Failed, Finished, Rerank, RerankResult


@dataclass
class Ranked:
    """One document's place: its index in the request and its score."""

    index: int
    score: float


async def rerank(model: Model, query: str, documents: list[str]) -> tuple[list[Ranked], int]:
    """The documents sorted by score (highest first, ties by index) and the
    number of tokens the model read (``model`` is a rerank model)."""
    async with await model.admission.acquire():
        async with model.handler.request(
            lambda req_id: Rerank(req_id=req_id, query=query, documents=documents)
        ) as frames:
            async for frame in frames:
                if isinstance(frame, Failed):
                    raise error_from_failed(frame)
                if isinstance(frame, RerankResult):
                    if len(frame.scores) != len(documents):
                        raise HandlerFailed("The model scored the wrong number of documents.")
                    ranked = [Ranked(i, s) for i, s in enumerate(frame.scores)]
                    ranked.sort(key=lambda r: (-r.score, r.index))
                    return ranked, frame.prompt_tokens
                if isinstance(frame, Finished):
                    break
    raise HandlerFailed("The model stopped answering before the request finished.")
