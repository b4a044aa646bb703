"""A model's life at the server: readiness follows the configured models,
keep_alive unloads idle ones."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from bodega.settings import embedded_lm_path
from tests.helpers import chat_body, start_server, stop_server


def test_readiness_follows_the_configured_models(tmp_path: Path) -> None:
    path = tmp_path / "never.yaml"
    path.write_text(
        f"models:\n  - model_path: {embedded_lm_path()}\n    model_id: lm\n    restart: never\n"
    )
    server = start_server("--config", str(path))
    try:
        ready = server.client.get("/health/ready")
        assert ready.status_code == 200 and ready.json() == {
            "status": "ready",
            "loaded_models": ["lm"],
        }
        os.kill(server.model_info("lm")["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            reply = server.client.get("/health/ready")
            if reply.status_code == 503:
                break
            time.sleep(0.1)
        assert reply.status_code == 503
        assert reply.json()["status"] == "not_ready" and reply.json()["loaded_models"] == []
        assert "lm is failed" in reply.json()["reason"]
    finally:
        stop_server(server)


def test_keep_alive_unloads_an_idle_model(tmp_path: Path) -> None:
    path = tmp_path / "keep.yaml"
    path.write_text(
        f"models:\n  - model_path: {embedded_lm_path()}\n    model_id: brief\n"
        "    keep_alive: 8\n"
        f"  - model_path: {embedded_lm_path()}\n    model_id: pinned\n"
        "    keep_alive: 0\n    pinned: true\n"
    )
    server = start_server("--config", str(path))
    try:
        brief = server.model_info("brief")
        assert brief["expires_at"] >= int(time.time())
        assert "expires_at" not in server.model_info("pinned")  # pinned: never
        reply = server.client.post(
            "/v1/chat/completions", json=chat_body("Hi", model="brief", max_tokens=2)
        )
        assert reply.status_code == 200  # a request renews the keep-alive
        assert server.model_info("brief")["expires_at"] >= brief["expires_at"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ids = [m["id"] for m in server.client.get("/v1/admin/loaded-models").json()["data"]]
            if "brief" not in ids:
                break
            time.sleep(0.2)
        assert ids == ["pinned"]
    finally:
        stop_server(server)
