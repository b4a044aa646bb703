"""BGE-M3's extra outputs: sparse (lexical) weights and ColBERT multi-vectors.

A BGE-M3 folder is a sentence-transformers model (dense: the normalised CLS
vector) with two more heads beside it, as FlagEmbedding saves them:
``sparse_linear.pt`` (hidden -> 1) and ``colbert_linear.pt`` (hidden ->
colbert dim), both applied to the last hidden states:

- sparse: ``relu(sparse_linear(h))`` per token; each token id keeps its
  largest weight; special tokens are dropped.
- colbert: ``colbert_linear(h[1:])`` for the tokens after CLS (padding
  dropped), each row scaled to unit length.

A model without these files supports dense embeddings only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from handlers.engine_protocol import LoadError

SPARSE_FILE = "sparse_linear.pt"
COLBERT_FILE = "colbert_linear.pt"


class M3Heads:
    """The sparse and/or colbert heads found beside a model."""

    def __init__(self, sparse: Any, colbert: Any, special_ids: set[int]) -> None:
        self.sparse_head = sparse
        self.colbert_head = colbert
        self.special_ids = special_ids

    @property
    def supports_sparse(self) -> bool:
        """Whether sparse weights can be computed."""
        return self.sparse_head is not None

    @property
    def supports_colbert(self) -> bool:
        """Whether ColBERT vectors can be computed."""
        return self.colbert_head is not None

    @property
    def colbert_dim(self) -> int:
        """The size of each ColBERT vector."""
        return int(self.colbert_head.out_features) if self.colbert_head is not None else 0

    @classmethod
    def find(cls, folder: str, hidden_size: int, tokenizer: Any) -> M3Heads | None:
        """The heads saved in ``folder``, or None when it has neither."""
        import torch

        def load(name: str, out: int | None) -> Any:
            path = Path(folder) / name
            if not path.is_file():
                return None
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                weight = state["weight"]
                head = torch.nn.Linear(hidden_size, out or int(weight.shape[0]))
                head.load_state_dict(state)
            except Exception as exc:
                raise LoadError(f"cannot load {path}: {exc}") from exc
            return head.eval()

        sparse = load(SPARSE_FILE, 1)
        colbert = load(COLBERT_FILE, None)
        if sparse is None and colbert is None:
            return None
        special = {
            i
            for i in (
                tokenizer.cls_token_id,
                tokenizer.eos_token_id,
                tokenizer.sep_token_id,
                tokenizer.pad_token_id,
                tokenizer.unk_token_id,
                tokenizer.bos_token_id,
            )
            if i is not None
        }
        return cls(sparse, colbert, special)

    def sparse(self, hidden: Any, ids: tuple[int, ...]) -> dict[int, float]:
        """Token id -> weight for one input (``hidden``: its rows, unpadded)."""
        weights = self._torch_relu(self.sparse_head(hidden)).squeeze(-1).float().cpu().numpy()
        out: dict[int, float] = {}
        for token, weight in zip(ids, weights.tolist(), strict=True):
            if token in self.special_ids or weight <= 0:
                continue
            if weight > out.get(token, 0.0):
                out[token] = float(weight)
        return out

    def colbert(self, hidden: Any) -> npt.NDArray[np.float32]:
        """One unit vector per token after CLS (``hidden``: unpadded rows)."""
        vectors = self.colbert_head(hidden[1:]).float().cpu().numpy()
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)

    @staticmethod
    def _torch_relu(x: Any) -> Any:
        import torch

        return torch.relu(x)
