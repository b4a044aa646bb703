"""``keep_alive`` per request (Ollama's semantics) through a real server:
it replaces the model's keep_alive from that request on and moves
``expires_at``; 0 unloads the model once the request is done; a negative
value keeps it; pinned models stay; a bad value is a 400 naming it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bodega.settings import embedded_embeddings_path, embedded_lm_path
from tests.helpers import Server, chat_for, start_server, stop_server

pytestmark = pytest.mark.timeout(300)


def completion(server: Server, model: str, keep_alive: Any) -> Any:
    body = {"model": model, "prompt": "Hello", "max_tokens": 2, "keep_alive": keep_alive}
    return server.client.post("/v1/completions", json=body)


def loaded(server: Server) -> list[str]:
    return [m["id"] for m in server.client.get("/v1/admin/loaded-models").json()["data"]]


def expires_in(server: Server, model: str) -> float | None:
    at = server.model_info(model).get("expires_at")
    return None if at is None else at - time.time()


def test_keep_alive_per_request(tmp_path: Path) -> None:
    lm = embedded_lm_path()
    config = tmp_path / "config.yaml"
    models = (
        f"  - {{model_id: lm, model_path: '{lm}', context_length: 512}}\n"
        f"  - {{model_id: pin, model_path: '{lm}', context_length: 512, pinned: true}}\n"
    )
    embeddings = embedded_embeddings_path()
    if embeddings is not None:
        models += f"  - {{model_id: emb, model_path: '{embeddings}', model_type: embeddings}}\n"
    config.write_text(f"models:\n{models}")
    server = start_server("--config", str(config))
    try:
        assert expires_in(server, "lm") is None  # no keep_alive configured: never

        for bad in ("soon", "5 minutes", "1d", "", True, [5], "nan"):
            reply = completion(server, "lm", bad)
            assert reply.status_code == 400, bad
            assert reply.json()["error"]["param"] == "keep_alive", bad
        assert expires_in(server, "lm") is None  # a refused request changes nothing

        assert completion(server, "lm", 300).status_code == 200
        assert 290 <= (expires_in(server, "lm") or 0) <= 301
        reply = server.client.post("/v1/chat/completions", json=chat_for("lm", "Hi", max_tokens=2))
        assert reply.status_code == 200  # no keep_alive: the last one still holds
        assert 290 <= (expires_in(server, "lm") or 0) <= 301
        body = chat_for("lm", "Hi", max_tokens=2, keep_alive="1h30m")
        assert server.client.post("/v1/chat/completions", json=body).status_code == 200
        assert 5390 <= (expires_in(server, "lm") or 0) <= 5401

        assert completion(server, "lm", "-1").status_code == 200  # forever
        assert expires_in(server, "lm") is None

        reply = completion(server, "pin", 0)
        assert reply.status_code == 200 and reply.json()["choices"][0]["text"]
        assert expires_in(server, "pin") is None  # pinned: never unloaded

        if embeddings is not None:
            body = {"model": "emb", "input": "hello", "keep_alive": "2m"}
            reply = server.client.post("/v1/embeddings", json=body)
            assert reply.status_code == 200 and reply.json()["data"][0]["embedding"]
            assert 110 <= (expires_in(server, "emb") or 0) <= 121

        reply = completion(server, "lm", 0)  # answered in full, then unloaded
        assert reply.status_code == 200 and reply.json()["choices"][0]["text"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "lm" in loaded(server):
            time.sleep(0.1)
        assert "lm" not in loaded(server)
        time.sleep(1)
        assert "pin" in loaded(server)
        assert completion(server, "lm", 0).status_code == 404  # gone for good
    finally:
        stop_server(server)
