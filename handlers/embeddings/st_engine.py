"""Text embeddings on sentence-transformers, micro-batched, with an LRU cache.

Inputs are tokenized here (texts) or taken as token ids, checked against the
model's maximum, wrapped in the model's special tokens, and run through the
SentenceTransformer's modules (transformer, pooling, normalize) exactly as
``SentenceTransformer.encode`` runs them. Concurrent requests are coalesced by
a ``MicroBatcher`` into shared forward passes; recent inputs are answered from
an LRU cache. Results leave as little-endian float32 rows, in shared memory
when large.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from catalog.options import LoadOptions
from handlers import shm_out
from handlers.device import torch_device
from handlers.embeddings.batcher import Cancelled, MicroBatcher
from handlers.embeddings.bge_m3 import M3Heads
from handlers.embeddings.st_traced import TracedEncoder
from handlers.engine_protocol import (
    ContextLengthExceeded,
    EngineError,
    LoadError,
    ModelFilesMissing,
    Send,
)
from handlers.engine_protocol import ShouldStop as ShouldStopFn
from ipc.messages import Embed, Embeddings, EngineCounters, EngineMemory, Finished, HandlerMessage

# Rows per forward pass inside one batch (sentence-transformers' default).
FORWARD_ROWS = 32
# A forward pass over fewer tokens (rows x longest row) runs on one thread,
# through the traced model when there is one: waking a second thread costs
# more than it saves on a few short inputs, and so do eager PyTorch's module calls.
SMALL_PASS_TOKENS = 512

Vector = npt.NDArray[np.float32]
TokenRow = tuple[int, ...]


@dataclass
class RowOut:
    """One input's outputs: the dense vector, and BGE-M3 extras when the
    model has their heads."""

    dense: Vector
    sparse: dict[int, float] | None = None
    colbert: Vector | None = None


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a single sequence."""
    marker = "hello"
    bare = list(tokenizer(marker, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(marker, add_special_tokens=True)["input_ids"])
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    raise LoadError("cannot tell the tokenizer's special tokens apart from the text")


class LruCache:
    """Thread-safe LRU of token rows -> (vector); size 0 disables it."""

    def __init__(self, size: int) -> None:
        self.size = max(0, size)
        self._data: OrderedDict[TokenRow, Vector] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: TokenRow) -> Vector | None:
        """The cached vector of ``key``, or None."""
        if not self.size:
            return None
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: TokenRow, value: Vector) -> None:
        """Remember ``value`` for ``key``, evicting the least recently used."""
        if not self.size:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


def load_sentence_transformer(spec: LoadOptions) -> Any:
    """The SentenceTransformer in ``spec.model_path`` (local files only)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not Path(spec.model_path).exists():
        raise ModelFilesMissing(f"model_path {spec.model_path!r} does not exist")
    from sentence_transformers import SentenceTransformer

    device = torch_device(spec.device)
    try:
        model = SentenceTransformer(
            spec.model_path,
            trust_remote_code=spec.trust_remote_code,
            local_files_only=True,
            device=device,
        )
    except Exception as exc:
        raise LoadError(f"sentence-transformers cannot load {spec.model_path!r}: {exc}") from exc
    model.eval()
    return model


class SentenceTransformerEngine:
    """Dense embeddings of one SentenceTransformer model."""

    name = "sentence-transformers"

    def __init__(self, spec: LoadOptions, model: Any = None) -> None:
        import torch

        self._torch = torch
        if spec.n_threads:
            torch.set_num_threads(spec.n_threads)
        self.threads = torch.get_num_threads()
        self.model = model if model is not None else load_sentence_transformer(spec)
        self.tokenizer = self.model.tokenizer
        if self.tokenizer is None:
            raise LoadError(f"the model in {spec.model_path!r} has no tokenizer")
        self.model_id = spec.id
        max_seq = int(self.model.max_seq_length or 512)
        self.context_length = min(max_seq, spec.context_length or max_seq)
        self.dim = int(self.model.get_embedding_dimension())
        self.prefix, self.suffix = special_tokens(self.tokenizer)
        self.max_content = self.context_length - len(self.prefix) - len(self.suffix)
        self.vocab_size = len(self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.use_token_types = "token_type_ids" in getattr(self.tokenizer, "model_input_names", ())
        self.parallel = max(1, spec.max_concurrency)
        self.cache = LruCache(spec.embedding_cache_size)
        auto_model = getattr(self.model[0], "auto_model", None)
        hidden = getattr(getattr(auto_model, "config", None), "hidden_size", None) or self.dim
        self.heads = M3Heads.find(spec.model_path, int(hidden), self.tokenizer)
        self.traced = TracedEncoder.build(
            self.model, self.pad_id, self.vocab_size, self.use_token_types
        )
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="embed-pass")
        self.batcher: MicroBatcher[TokenRow, RowOut] = MicroBatcher(
            self._forward,
            window=spec.batch_window_ms / 1000.0,
            max_rows=spec.max_batch_size,
            name="embed-batcher",
        )

    # --- requests --------------------------------------------------------

    def handle(self, request: object, send: Send, should_stop: ShouldStopFn) -> HandlerMessage:
        """Answer an ``Embed`` with ``Embeddings``."""
        if not isinstance(request, Embed):
            raise EngineError(f"an embeddings model cannot answer {type(request).__name__}")
        self._check_supported(request)
        rows = self.token_rows(request)
        try:
            if request.embedding_type == "dense" and not request.return_sparse:
                outs = None
                matrix = self.dense_matrix(rows, should_stop)
            else:
                outs = self.batcher.submit(rows, should_stop)
                matrix = np.stack([o.dense for o in outs])
        except Cancelled:
            return Finished(req_id=request.req_id, reason="cancelled")
        counts: list[int] = []
        sparse = [o.sparse or {} for o in outs] if outs is not None else None
        if request.embedding_type == "sparse":
            matrix = np.zeros((0, 0), dtype=np.float32)
        elif request.embedding_type == "colbert":
            assert outs is not None
            colbert = [o.colbert for o in outs if o.colbert is not None]
            counts = [len(c) for c in colbert]
            matrix = np.concatenate(colbert)
            sparse = sparse if request.return_sparse else None
        elif request.dimensions is not None and request.dimensions < self.dim:
            matrix = truncate_dimensions(matrix, request.dimensions)
        data = np.ascontiguousarray(matrix, dtype="<f4").tobytes()
        return Embeddings(
            req_id=request.req_id,
            rows=matrix.shape[0],
            dim=matrix.shape[1],
            vectors=shm_out.offload(data),
            counts=counts,
            sparse=sparse,
            prompt_tokens=sum(len(row) for row in rows),
        )

    def _check_supported(self, request: Embed) -> None:
        heads = self.heads
        if request.embedding_type == "colbert" and not (heads and heads.supports_colbert):
            raise EngineError(
                f"model {self.model_id!r} does not support colbert embeddings "
                "(it has no colbert_linear.pt head; dense only)",
                param="embedding_type",
            )
        wants_sparse = request.embedding_type == "sparse" or request.return_sparse
        if wants_sparse and not (heads and heads.supports_sparse):
            raise EngineError(
                f"model {self.model_id!r} does not support sparse embeddings "
                "(it has no sparse_linear.pt head; dense only)",
                param="embedding_type" if request.embedding_type == "sparse" else "return_sparse",
            )
        if request.dimensions is not None:
            if request.embedding_type != "dense":
                raise EngineError("dimensions applies to dense embeddings only", param="dimensions")
            if not 1 <= request.dimensions <= self.dim:
                raise EngineError(
                    f"dimensions must be between 1 and the model's {self.dim}, "
                    f"got {request.dimensions}",
                    param="dimensions",
                )

    def token_rows(self, request: Embed) -> list[TokenRow]:
        """Each input's token ids with the model's special tokens, checked
        against (or, with ``truncate``, cut to) the model's maximum."""
        if request.texts:
            contents: Sequence[Sequence[int]] = self.tokenizer(
                list(request.texts), add_special_tokens=False
            )["input_ids"]
        else:
            contents = request.token_ids
            for i, ids in enumerate(contents):
                bad = next((t for t in ids if not 0 <= t < self.vocab_size), None)
                if bad is not None:
                    raise EngineError(
                        f"input[{i}] holds token id {bad}, outside the model's "
                        f"vocabulary of {self.vocab_size}",
                        param="input",
                    )
        rows = []
        for i, content in enumerate(contents):
            ids = list(content)
            if len(ids) > self.max_content:
                if not request.truncate:
                    raise ContextLengthExceeded(
                        f"input[{i}] is {len(ids) + len(self.prefix) + len(self.suffix)} "
                        f"tokens, more than the model's maximum of {self.context_length}; "
                        "shorten it or pass truncate: true",
                        param="input",
                    )
                ids = ids[: self.max_content]
            rows.append((*self.prefix, *ids, *self.suffix))
        return rows

    def dense_matrix(self, rows: list[TokenRow], should_stop: ShouldStopFn) -> Vector:
        """The model's dense vectors for ``rows``: from the cache, or batched."""
        vectors: list[Vector | None] = [self.cache.get(row) for row in rows]
        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing:
            computed = self.batcher.submit([rows[i] for i in missing], should_stop)
            for i, out in zip(missing, computed, strict=True):
                vectors[i] = out.dense
                self.cache.put(rows[i], out.dense)
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([v for v in vectors if v is not None])

    # --- compute (the batcher's thread) ---------------------------------

    def _forward(self, rows: list[TokenRow]) -> Iterator[tuple[int, RowOut]]:
        """Each row's outputs, as passes over rows of similar length finish.

        Rows enough for several passes run them side by side, one thread
        each: no per-operation handoff between threads, and a pass whose
        thread loses its core (to the HTTP process) does not stall the other.
        There are at least two passes per thread, so that half the answers
        leave while the rest are computed. A lone pass uses every thread when
        it is large.
        """
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
        tokens = sum(len(row) for row in rows)
        count = -(-len(order) // FORWARD_ROWS)
        if self.threads > 1 and tokens >= SMALL_PASS_TOKENS:
            count = max(count, min(2 * self.threads, len(order)))
        size = -(-len(order) // count)
        passes = [order[start : start + size] for start in range(0, len(order), size)]
        if len(passes) == 1:
            yield from self._pass(rows, passes[0], self.threads)
            return
        futures = [self._pool.submit(self._pass, rows, chunk, 1) for chunk in passes]
        try:
            for future in as_completed(futures):
                yield from future.result()
        finally:
            for future in futures:
                future.cancel()

    def _pass(
        self, rows: list[TokenRow], chunk: list[int], threads: int
    ) -> list[tuple[int, RowOut]]:
        """One forward pass over ``rows[i] for i in chunk`` on up to ``threads``."""
        torch = self._torch
        width = max(len(rows[i]) for i in chunk)
        ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for j, i in enumerate(chunk):
            ids[j, : len(rows[i])] = torch.tensor(rows[i], dtype=torch.long)
            mask[j, : len(rows[i])] = 1
        small = len(chunk) * width < SMALL_PASS_TOKENS
        torch.set_num_threads(1 if small else threads)  # this thread's setting only
        device = self.model.device
        features = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
        if self.use_token_types:
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
        with torch.inference_mode():
            result = (self.traced if small and self.traced else self.model)(features)
            matrix = result["sentence_embedding"].float().cpu().numpy()
            return [(i, self._row_out(matrix[j], result, j, rows[i])) for j, i in enumerate(chunk)]

    def _row_out(self, dense: Vector, result: Any, j: int, row: TokenRow) -> RowOut:
        heads = self.heads
        if heads is None:
            return RowOut(dense)
        hidden = result["token_embeddings"][j, : len(row)]
        return RowOut(
            dense,
            sparse=heads.sparse(hidden, row) if heads.supports_sparse else None,
            colbert=heads.colbert(hidden) if heads.supports_colbert else None,
        )

    # --- engine ----------------------------------------------------------

    def memory(self) -> EngineMemory:
        """Nothing beyond the process's RSS."""
        return EngineMemory()

    def counters(self) -> EngineCounters:
        """Cache and batching figures."""
        return EngineCounters(
            cache_entries=len(self.cache),
            cache_hits=self.cache.hits,
            batches=self.batcher.batches,
            rows_embedded=self.batcher.rows_run,
        )

    def close(self) -> None:
        """Stop the batcher and its pass threads."""
        self.batcher.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def truncate_dimensions(matrix: Vector, dimensions: int) -> Vector:
    """Keep the first ``dimensions`` columns and scale rows back to unit length."""
    cut = matrix[:, :dimensions]
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return (cut / np.maximum(norms, 1e-12)).astype(np.float32)
