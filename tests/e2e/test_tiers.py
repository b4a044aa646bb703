"""The LLM Service docs' tiers, name routing, per-model defaults, the
llama.cpp load options and the /health timestamp, over HTTP."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from bodega.settings import embedded_embeddings_path, embedded_lm_path
from tests.helpers import Server, start_server, stop_server, wait_until

EMBEDDINGS = embedded_embeddings_path()
pytestmark = pytest.mark.skipif(EMBEDDINGS is None, reason="embedded embeddings model missing")


MODELS = (
    "models:\n"
    f"  - model_path: {embedded_lm_path()}\n    model_id: smol\n"
    "    context_length: 1024\n    n_batch: 256\n    use_mmap: false\n"
    "    defaults:\n      max_tokens: 3\n      temperature: 0.0\n"
    f"  - model_path: {EMBEDDINGS}\n    model_id: minilm\n    model_type: embeddings\n"
)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiers")
    path = folder / "config.yaml"
    path.write_text(
        f"server:\n  data_dir: {folder / 'data'}\n"
        "tiers:\n  light: smol\n  embedding: minilm\n" + MODELS
    )
    return path


@pytest.fixture(scope="module")
def server(config: Path) -> Iterator[Server]:
    srv = start_server("--config", str(config))
    yield srv
    stop_server(srv)


def chat(server: Server, model: str, **fields: object) -> dict[str, object]:
    body = {"model": model, "messages": [{"role": "user", "content": "Count to ten."}]}
    r = server.client.post("/v1/chat/completions", json={**body, **fields})
    assert r.status_code == 200, r.text
    answer: dict[str, object] = r.json()
    return answer


def usage(answer: dict[str, object]) -> dict[str, int]:
    value = answer["usage"]
    assert isinstance(value, dict)
    return value


def test_a_tier_name_routes_to_its_model(server: Server) -> None:
    answer = chat(server, "light", ignore_eos=True)
    assert answer["model"] == "smol"
    r = server.client.post("/v1/embeddings", json={"model": "embedding", "input": "hello"})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "minilm"
    assert len(r.json()["data"][0]["embedding"]) == 384


def test_name_patterns_route_to_a_tier(server: Server) -> None:
    for name in ("my-bge-thing", "text-embedding-3-small", "multilingual-e5-large"):
        r = server.client.post("/v1/embeddings", json={"model": name, "input": "hi"})
        assert r.status_code == 200, (name, r.text)
        assert r.json()["model"] == "minilm"
    # A size hint: 0.5b is a light model.
    assert chat(server, "qwen2.5-0.5b-instruct", ignore_eos=True)["model"] == "smol"


def test_a_pattern_whose_tier_is_empty_is_not_found(server: Server) -> None:
    r = server.client.post(
        "/v1/chat/completions",
        json={"model": "llama-70b", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"


def test_an_empty_tier_answers_as_the_docs_show(server: Server) -> None:
    r = server.client.post(
        "/v1/chat/completions",
        json={"model": "heavy", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["message"] == "No models available for tier: heavy"
    assert error["type"] == "model_error"
    r = server.client.post(
        "/v1/rerank", json={"model": "reranker", "query": "q", "documents": ["d"]}
    )
    assert r.json()["error"]["message"] == "No models available for tier: reranker"


def test_a_tier_keeps_the_endpoint_model_kind(server: Server) -> None:
    r = server.client.post(
        "/v1/chat/completions",
        json={"model": "embedding", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "model"
    r = server.client.post("/v1/embeddings", json={"model": "light", "input": "hi"})
    assert r.status_code == 400


def test_an_exact_id_wins_over_a_pattern(server: Server) -> None:
    r = server.load("bge-like-lm", context_length=512)
    assert r.status_code == 201, r.text
    try:
        assert chat(server, "bge-like-lm", max_tokens=1)["model"] == "bge-like-lm"
    finally:
        server.client.delete("/v1/admin/unload-model/bge-like-lm")


def test_defaults_apply_only_when_the_field_is_left_out(server: Server) -> None:
    assert usage(chat(server, "smol", ignore_eos=True))["completion_tokens"] == 3
    assert usage(chat(server, "smol", ignore_eos=True, max_tokens=6))["completion_tokens"] == 6
    r = server.client.post(
        "/v1/completions", json={"model": "light", "prompt": "Once", "ignore_eos": True}
    )
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] == 3
    # temperature 0 by default: the same answer every time.
    first, second = (chat(server, "smol", max_tokens=8) for _ in range(2))
    assert first["choices"] == second["choices"]


def test_defaults_reach_the_responses_api(server: Server) -> None:
    r = server.client.post("/v1/responses", json={"model": "light", "input": "Count to ten."})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["output_tokens"] <= 3
    r = server.client.post(
        "/v1/responses", json={"model": "light", "input": "Count to ten.", "max_output_tokens": 6}
    )
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["output_tokens"] > 3


def test_defaults_reach_the_forgellm_generate_route(server: Server) -> None:
    def tokens() -> int:
        return int(server.model_info("smol")["tokens_generated"] or 0)

    def generate(**fields: object) -> str:
        before = tokens()
        r = server.client.post("/api/model/generate", json={"prompt": "Count to ten.", **fields})
        assert r.status_code == 200, r.text
        assert r.json()["success"] is True
        made = wait_until(lambda: tokens() - before)
        spent.append(made)
        return str(r.json()["text"])

    spent: list[int] = []
    # Before any ForgeLLM load, "the model" is the first language model: smol.
    first, second = generate(), generate()
    assert first == second  # temperature 0 by default
    assert spent == [3, 3]  # max_tokens 3 by default
    generate(max_tokens=6)
    assert spent[-1] == 6


def test_loaded_models_show_the_defaults_and_knobs(server: Server) -> None:
    models = {m["id"]: m for m in server.client.get("/v1/admin/loaded-models").json()["data"]}
    smol = models["smol"]
    assert smol["defaults"] == {"temperature": 0.0, "max_tokens": 3}
    assert smol["n_batch"] == 256 and smol["use_mmap"] is False
    assert smol["status"] == "running"
    assert "n_batch" not in models["minilm"] and "defaults" not in models["minilm"]


def test_llamacpp_knobs_are_refused_elsewhere(server: Server) -> None:
    r = server.client.post(
        "/v1/admin/load-model",
        json={
            "model_path": EMBEDDINGS,
            "model_id": "e2",
            "model_type": "embeddings",
            "n_batch": 64,
        },
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "n_batch" and "cannot honour n_batch" in error["message"]


def test_health_has_the_docs_timestamp(server: Server) -> None:
    body = server.client.get("/health").json()
    stamp = datetime.fromisoformat(body["timestamp"])
    assert stamp.tzinfo is not None
    assert abs((datetime.now(stamp.tzinfo) - stamp).total_seconds()) < 60
    assert body["status"] == "ok" and "models_detail" in body


def test_the_model_list_shows_tiers_and_takes_the_docs_ids(server: Server) -> None:
    cards = {c["id"]: c for c in server.client.get("/v1/models").json()["data"]}
    assert cards["smol"]["tiers"] == ["light"]
    assert cards["minilm"]["tiers"] == ["embedding"]
    # The docs list models as tier/model; such an id routes like the model's own.
    assert chat(server, "light/smol", max_tokens=1)["model"] == "smol"
    one = server.client.get("/v1/models/embedding/minilm")
    assert one.status_code == 200 and one.json()["id"] == "minilm"
    assert one.json()["tiers"] == ["embedding"]
    r = server.client.post(
        "/v1/chat/completions",
        json={"model": "heavy/smol", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 404  # heavy does not map to smol


def test_sighup_takes_new_tiers_and_cache_settings(config: Path, server: Server) -> None:
    # Runs last: it changes the module server's configuration.
    config.write_text(
        config.read_text().split("tiers:")[0]
        + "tiers:\n  medium: smol\n  embedding: minilm\n"
        + "cache:\n  enabled: true\n" + MODELS
    )  # fmt: skip
    server.process.send_signal(signal.SIGHUP)

    def medium_routes() -> bool:
        body = {"model": "medium", "messages": [{"role": "user", "content": "hi"}]}
        return server.client.post("/v1/chat/completions", json=body).status_code == 200

    wait_until(medium_routes)
    r = server.client.post(
        "/v1/chat/completions",
        json={"model": "light", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.json()["error"]["message"] == "No models available for tier: light"
    body = {"model": "smol", "messages": [{"role": "user", "content": "Name a tree."}]}
    first = server.client.post("/v1/chat/completions", json=body)  # temperature 0: a default
    second = server.client.post("/v1/chat/completions", json=body)
    assert (first.headers["X-Bodega-Cache"], second.headers["X-Bodega-Cache"]) == ("miss", "hit")
    assert second.json()["choices"] == first.json()["choices"]
    cards = {c["id"]: c for c in server.client.get("/v1/models").json()["data"]}
    assert cards["smol"]["tiers"] == ["medium"]
