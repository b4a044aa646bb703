"""The ForgeLLM model API through HTTP: asynchronous load, status, generate,
the ``{"success": false, "error"}`` envelope, and the shared registry."""

from __future__ import annotations

from typing import Any

from bodega.settings import embedded_lm_path
from tests.helpers import Server, wait_until


def _status(server: Server) -> dict[str, Any]:
    response = server.client.get("/api/model/status")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_load_then_status_then_generate(server: Server) -> None:
    name = embedded_lm_path()
    response = server.client.post("/api/model/load", json={"model_name": name})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "success": True,
        "message": f"Model {name} loading started",
        "model_name": name,
        "adapter_path": None,
    }
    try:
        first = _status(server)
        assert first["success"] is True and first["model_name"] == name
        assert first["is_loading"] and not first["loaded"]  # answered before the load ended
        done = wait_until(lambda: (s := _status(server))["loaded"] and s, timeout=60)
        assert done["is_loading"] is False and done["error"] is None
        assert done["adapter_path"] is None

        ids = [m["id"] for m in server.client.get("/v1/admin/loaded-models").json()["data"]]
        assert name in ids

        answer = server.client.post(
            "/api/model/generate",
            json={"prompt": "Hello, world!", "max_tokens": 8, "temperature": 0},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["success"] is True
        assert isinstance(body["text"], str) and body["text"].strip()
        assert isinstance(body["generation_time"], float) and body["generation_time"] > 0
    finally:
        server.unload(name)


def test_errors_use_the_envelope(server: Server) -> None:
    missing = server.client.post("/api/model/generate", json={"max_tokens": 4})
    assert missing.status_code == 400
    assert missing.json()["success"] is False and "prompt" in missing.json()["error"]

    unknown = server.client.post("/api/model/load", json={"model_name": "/no/such/model.gguf"})
    assert 400 <= unknown.status_code < 500
    assert unknown.json()["success"] is False
    assert "/no/such/model.gguf" in unknown.json()["error"]

    # llama.cpp takes no LoRA adapter here: refused before anything loads
    adapter = server.client.post(
        "/api/model/load", json={"model_name": embedded_lm_path(), "adapter_path": "/tmp"}
    )
    assert adapter.status_code == 400
    assert adapter.json()["success"] is False and "lora_paths" in adapter.json()["error"]
    ids = [m["id"] for m in server.client.get("/v1/admin/loaded-models").json()["data"]]
    assert embedded_lm_path() not in ids

    no_body = server.client.post("/api/model/load", content=b"{}")
    assert no_body.status_code == 400 and "model_name" in no_body.json()["error"]
