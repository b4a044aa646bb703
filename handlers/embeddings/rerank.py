"""Reranking: score (query, document) pairs.

Two engines behind one request type:

- ``cross-encoder``: a sentence-transformers ``CrossEncoder`` reads each pair
  together and scores it (its default activation, e.g. a sigmoid for one
  label). The accurate kind.
- ``bi-encoder``: an embeddings model embeds the query and each document and
  scores their cosine similarity. Any sentence-transformers embeddings model
  (the embedded all-MiniLM-L6-v2 included) works, so it is also a fallback
  when no cross-encoder is at hand.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from catalog.options import LoadOptions
from handlers.device import torch_device
from handlers.embeddings.batcher import Cancelled
from handlers.embeddings.st_engine import SentenceTransformerEngine
from handlers.engine_protocol import EngineError, LoadError, ModelFilesMissing, Send, ShouldStop
from ipc.messages import (
    Embed,
    EngineCounters,
    EngineMemory,
    Finished,
    HandlerMessage,
    Rerank,
    RerankResult,
)

PAIR_BATCH = 32


class CrossEncoderEngine:
    """A sentence-transformers CrossEncoder."""

    name = "cross-encoder"

    def __init__(self, spec: LoadOptions) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if not Path(spec.model_path).exists():
            raise ModelFilesMissing(f"model_path {spec.model_path!r} does not exist")
        import torch
        from sentence_transformers import CrossEncoder

        if spec.n_threads:
            torch.set_num_threads(spec.n_threads)

        device = torch_device(spec.device)
        try:
            self.model: Any = CrossEncoder(
                spec.model_path,
                trust_remote_code=spec.trust_remote_code,
                local_files_only=True,
                max_length=spec.context_length,
                device=device,
            )
        except Exception as exc:
            raise LoadError(
                f"sentence-transformers cannot load {spec.model_path!r}: {exc}"
            ) from exc
        self.model.eval()
        self.tokenizer = self.model.tokenizer
        self.context_length = int(self.model.max_length or 512)
        self.parallel = 1

    def handle(self, request: object, send: Send, should_stop: ShouldStop) -> HandlerMessage:
        """Answer a ``Rerank`` with one score per document."""
        if not isinstance(request, Rerank):
            raise EngineError(f"a rerank model cannot answer {type(request).__name__}")
        scores: list[float] = []
        tokens = 0
        docs = request.documents
        for start in range(0, len(docs), PAIR_BATCH):
            if should_stop():
                return Finished(req_id=request.req_id, reason="cancelled")
            chunk = docs[start : start + PAIR_BATCH]
            pairs = [(request.query, doc) for doc in chunk]
            predicted = self.model.predict(pairs, batch_size=PAIR_BATCH, convert_to_numpy=True)
            scores += [float(s) for s in np.asarray(predicted, dtype=np.float64).reshape(-1)]
            encoded = self.tokenizer(
                [request.query] * len(chunk),
                list(chunk),
                truncation=True,
                max_length=self.context_length,
            )
            tokens += sum(len(ids) for ids in encoded["input_ids"])
        return RerankResult(req_id=request.req_id, scores=scores, prompt_tokens=tokens)

    def memory(self) -> EngineMemory:
        """Nothing beyond the process's RSS."""
        return EngineMemory()

    def close(self) -> None:
        """Nothing to release before the process exits."""


class BiEncoderRerankEngine:
    """Cosine similarity of an embeddings model's vectors."""

    name = "bi-encoder"

    def __init__(self, spec: LoadOptions) -> None:
        self.embedder = SentenceTransformerEngine(spec)
        self.context_length = self.embedder.context_length
        self.parallel = self.embedder.parallel

    def handle(self, request: object, send: Send, should_stop: ShouldStop) -> HandlerMessage:
        """Answer a ``Rerank`` with the cosine similarity of each document."""
        if not isinstance(request, Rerank):
            raise EngineError(f"a rerank model cannot answer {type(request).__name__}")
        embed = Embed(
            req_id=request.req_id, texts=[request.query, *request.documents], truncate=True
        )
        rows = self.embedder.token_rows(embed)
        try:
            matrix = self.embedder.dense_matrix(rows, should_stop)
        except Cancelled:
            return Finished(req_id=request.req_id, reason="cancelled")
        norms = np.maximum(np.linalg.norm(matrix, axis=1), 1e-12)
        unit = matrix / norms[:, None]
        scores = unit[1:] @ unit[0]
        return RerankResult(
            req_id=request.req_id,
            scores=[float(s) for s in scores],
            prompt_tokens=sum(len(row) for row in rows),
        )

    def memory(self) -> EngineMemory:
        """Nothing beyond the process's RSS."""
        return EngineMemory()

    def counters(self) -> EngineCounters:
        """The embedder's cache and batching figures."""
        return self.embedder.counters()

    def close(self) -> None:
        """Stop the embedder's batcher."""
        self.embedder.close()
