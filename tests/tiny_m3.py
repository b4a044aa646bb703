"""A tiny randomly initialised BGE-M3-style model, built on the fly: a 2-layer
BERT with CLS pooling and normalisation as a sentence-transformers folder,
plus FlagEmbedding's ``sparse_linear.pt`` and ``colbert_linear.pt`` heads.
Honest plumbing for the sparse and colbert outputs, no claim of quality."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from bodega.settings import embedded_embeddings_path

HIDDEN = 32
COLBERT_DIM = 16


def build_tiny_m3(folder: Path) -> Path:
    """Write the model into ``folder / "m3"`` and return that path."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    bert_dir, st_dir = folder / "bert", folder / "m3"
    tokenizer = AutoTokenizer.from_pretrained(embedded_embeddings_path())
    torch.manual_seed(7)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    BertModel(config).save_pretrained(bert_dir)
    tokenizer.save_pretrained(bert_dir)
    word = Transformer(str(bert_dir), max_seq_length=128)
    pool = Pooling(HIDDEN, pooling_mode="cls")
    SentenceTransformer(modules=[word, pool, Normalize()]).save(str(st_dir))
    torch.save(torch.nn.Linear(HIDDEN, 1).state_dict(), st_dir / "sparse_linear.pt")
    torch.save(torch.nn.Linear(HIDDEN, COLBERT_DIM).state_dict(), st_dir / "colbert_linear.pt")
    return st_dir


def reference_m3(folder: Path, text: str) -> tuple[dict[int, float], np.ndarray]:
    """FlagEmbedding's sparse weights and colbert vectors for ``text``,
    computed here from the raw transformer and the saved heads."""
    import torch
    from transformers import AutoTokenizer, BertModel

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = BertModel.from_pretrained(folder).eval()
    encoded = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**encoded).last_hidden_state[0]
        sparse_state: Any = torch.load(folder / "sparse_linear.pt", weights_only=True)
        colbert_state: Any = torch.load(folder / "colbert_linear.pt", weights_only=True)
        weights = torch.relu(hidden @ sparse_state["weight"].T + sparse_state["bias"])[:, 0]
        colbert = hidden[1:] @ colbert_state["weight"].T + colbert_state["bias"]
        colbert = torch.nn.functional.normalize(colbert, dim=-1)
    special = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id}
    special.add(tokenizer.unk_token_id)
    sparse: dict[int, float] = {}
    for token, weight in zip(encoded["input_ids"][0].tolist(), weights.tolist(), strict=True):
        if token not in special and weight > 0:
            sparse[token] = max(weight, sparse.get(token, 0.0))
    return sparse, colbert.numpy()
