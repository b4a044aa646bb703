"""BGE-M3 extras (sparse weights, colbert vectors) in the embeddings engine,
on a tiny random BGE-M3-style model, against FlagEmbedding's formulas
computed from the raw transformer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from catalog.options import LoadOptions
from handlers.embeddings.st_engine import SentenceTransformerEngine
from handlers.engine_protocol import EngineError
from ipc.messages import Embed, Embeddings, ShmRef
from tests.tiny_m3 import COLBERT_DIM, HIDDEN, build_tiny_m3, reference_m3

pytestmark = pytest.mark.timeout(120)
TEXTS = ["the the cat sat", "sparse and dense retrieval together"]


@pytest.fixture(scope="module")
def m3_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_m3(tmp_path_factory.mktemp("m3"))


@pytest.fixture(scope="module")
def engine(m3_path: Path) -> Iterator[SentenceTransformerEngine]:
    spec = LoadOptions(model_id="m3", model_path=str(m3_path), model_type="embeddings")
    eng = SentenceTransformerEngine(spec)
    yield eng
    eng.close()


def run(engine: SentenceTransformerEngine, **fields: object) -> Embeddings:
    reply = engine.handle(Embed(req_id=1, texts=TEXTS, **fields), lambda m: None, lambda: False)
    assert isinstance(reply, Embeddings)
    return reply


def matrix(reply: Embeddings) -> np.ndarray:
    assert not isinstance(reply.vectors, ShmRef)
    return np.frombuffer(reply.vectors, dtype="<f4").reshape(reply.rows, reply.dim)


def test_dense_with_return_sparse(engine: SentenceTransformerEngine, m3_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    reply = run(engine, return_sparse=True)
    np.testing.assert_allclose(
        matrix(reply), SentenceTransformer(str(m3_path)).encode(TEXTS), atol=1e-5
    )
    assert reply.dim == HIDDEN and reply.sparse is not None and len(reply.sparse) == 2
    for text, weights in zip(TEXTS, reply.sparse, strict=True):
        expected, _ = reference_m3(m3_path, text)
        assert weights.keys() == expected.keys()
        for token, weight in expected.items():
            assert weights[token] == pytest.approx(weight, abs=1e-5)


def test_sparse_only(engine: SentenceTransformerEngine, m3_path: Path) -> None:
    reply = run(engine, embedding_type="sparse")
    assert reply.rows == 0 and reply.sparse is not None
    assert reply.sparse[0].keys() == reference_m3(m3_path, TEXTS[0])[0].keys()


def test_colbert_vectors(engine: SentenceTransformerEngine, m3_path: Path) -> None:
    reply = run(engine, embedding_type="colbert")
    got = matrix(reply)
    assert reply.dim == COLBERT_DIM and reply.sparse is None
    start = 0
    for text, count in zip(TEXTS, reply.counts, strict=True):
        _, expected = reference_m3(m3_path, text)
        assert count == len(expected)  # every token after CLS, the last SEP included
        np.testing.assert_allclose(got[start : start + count], expected, atol=1e-5)
        start += count
    assert start == reply.rows
    with pytest.raises(EngineError) as err:
        run(engine, embedding_type="colbert", dimensions=8)
    assert err.value.param == "dimensions"
