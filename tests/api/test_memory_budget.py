"""One memory budget over every model: estimates before loading, eviction of
idle unpinned models (least recently used first), a 507 naming the holders."""

from __future__ import annotations

from pathlib import Path

from bodega.settings import embedded_lm_path
from tests.helpers import start_server, stop_server


def test_the_budget_evicts_idle_models_and_refuses_what_cannot_fit(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("server:\n  memory_budget_mb: 700\nmodels: []\n")
    server = start_server("--config", str(config))
    lm = embedded_lm_path()

    def load(model_id: str, **extra: object) -> int:
        body = {"model_path": lm, "model_id": model_id, "context_length": 512, **extra}
        return server.client.post("/v1/admin/load-model", json=body, timeout=120).status_code

    def loaded() -> list[str]:
        return [m["id"] for m in server.client.get("/v1/admin/loaded-models").json()["data"]]

    try:
        assert load("m1", pinned=True) == 201
        assert load("m2") == 201
        info = {m["id"]: m for m in server.client.get("/v1/admin/loaded-models").json()["data"]}
        estimate = info["m1"]["memory"]["estimated_mb"]
        assert 150 < estimate < 500  # weights (94 MB) + a small KV cache + the runtime
        assert info["m1"]["memory"]["rss_mb"] > 0
        buffers = info["m1"]["memory"]["llamacpp_buffers"]  # llama.cpp's own figures
        assert buffers["kv_cache_mb"] == 11.2  # the estimate's f16 KV cache, exactly
        assert 80 < buffers["model_mb"] < 100 and buffers["compute_mb"] > 0
        assert estimate > buffers["model_mb"] + buffers["kv_cache_mb"] + buffers["compute_mb"]
        assert loaded() == ["m1", "m2"]

        assert load("m3") == 201  # m2 is the least recently used unpinned model
        assert loaded() == ["m1", "m3"]

        # 8 slots of 32k context: a 5+ GB KV cache cannot fit beside pinned m1.
        body = {"model_path": lm, "model_id": "huge", "context_length": 32768, "max_concurrency": 8}
        reply = server.client.post("/v1/admin/load-model", json=body, timeout=120)
        assert reply.status_code == 507
        error = reply.json()["error"]
        assert error["code"] == "insufficient_memory"
        assert "m1" in error["message"] and "pinned" in error["message"]
        assert "missing" in error["message"]
        assert loaded() == ["m1"]  # m3 went while trying; the pinned one never
    finally:
        stop_server(server)
