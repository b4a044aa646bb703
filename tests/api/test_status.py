"""Health, model list and queue statistics."""

from __future__ import annotations

from tests.helpers import Server


def test_health_ok(server: Server) -> None:
    r = server.client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert "smollm2-135m" in body["model_id"]
    assert body["model_status"].startswith("initialized (")
    detail = next(d for d in body["models_detail"] if d["id"] == "smollm2-135m")
    assert detail["type"] == "lm"
    assert detail["status"] == "running"
    assert detail["ram_usage_mb"] > 10


def test_models_list(server: Server) -> None:
    body = server.client.get("/v1/models").json()
    assert body["object"] == "list"
    model = next(m for m in body["data"] if m["id"] == "smollm2-135m")
    assert model["object"] == "model"
    assert isinstance(model["created"], int)
    assert model["owned_by"] == "bodega"


def test_queue_stats_count_requests(server: Server) -> None:
    before = server.client.get("/v1/queue/stats").json()["queue_stats"]["models"]["smollm2-135m"]
    server.client.post(
        "/v1/completions", json={"model": "smollm2-135m", "prompt": "Hi", "max_tokens": 1}
    )
    stats = server.client.get("/v1/queue/stats").json()["queue_stats"]
    after = stats["models"]["smollm2-135m"]
    assert after["completed"] == before["completed"] + 1
    assert after["queued"] == 0 and after["running"] == 0
    assert {"rejected", "timed_out", "max_concurrency", "queue_size"} <= set(after)
    assert stats["active_requests"] == 0 and stats["queue_size"] == 0
