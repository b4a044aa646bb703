"""Per-request M-RoPE offsets carried by the KV cache, so batched rows keep theirs.

Qwen-VL models lay a prompt's image tokens on a 3-D position grid; after the
prompt every row decodes at ``cache offset + rope_delta``, a delta of its own.
mlx-lm's ``BatchGenerator`` merges, filters, extends and extracts the rows'
caches as requests come and go, so the first layer's cache carries the deltas
through each of those, in the batch's row order, and the language model reads
them from it on every call. Imported only on the handler's scheduler thread.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
from mlx_vlm.models.cache import BatchKVCache, KVCache


class _Deltas:
    """Each row's offset, as a list and as the language model takes it."""

    row_deltas: list[int]

    @property
    def rope_deltas(self) -> mx.array:
        """Shape (rows, 1)."""
        return mx.array([[d] for d in self.row_deltas])


class PositionedKVCache(_Deltas, KVCache):
    """One request's first-layer cache and its position offset."""

    @classmethod
    def of(cls, layer: Any, rope_delta: int) -> PositionedKVCache:
        """``layer``'s keys and values (shared, not copied) with ``rope_delta``."""
        cache = cls()
        cache.keys, cache.values, cache.offset = layer.keys, layer.values, layer.offset
        cache.row_deltas = [rope_delta]
        return cache

    @classmethod
    def merge(cls, caches: list[Any]) -> PositionedBatchKVCache:
        """The batch of ``caches`` (mlx-lm merges rows by the first row's class)."""
        return PositionedBatchKVCache.merge(caches)


class PositionedBatchKVCache(_Deltas, BatchKVCache):
    """A batch's first-layer cache and each row's position offset."""

    @classmethod
    def merge(cls, caches: list[Any]) -> PositionedBatchKVCache:
        merged = super().merge(caches)
        if not isinstance(merged, cls):  # all empty: BatchKVCache builds a plain one
            merged = cls([0] * len(caches))
        merged.row_deltas = [_deltas(c, 1)[0] for c in caches]
        return merged

    def filter(self, batch_indices: list[int]) -> None:
        super().filter(batch_indices)
        self.row_deltas = [self.row_deltas[i] for i in batch_indices]

    def extend(self, other: Any) -> None:
        added = _deltas(other, int(other.left_padding.shape[0]))
        super().extend(other)
        self.row_deltas = self.row_deltas + added

    def extract(self, idx: int) -> PositionedKVCache:
        return PositionedKVCache.of(super().extract(idx), self.row_deltas[idx])


def _deltas(cache: Any, rows: int) -> list[int]:
    """A cache's row offsets; a cache that carries none is at offset 0."""
    return list(getattr(cache, "row_deltas", [0] * rows))
