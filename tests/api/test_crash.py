"""A handler that dies mid-request: the client hears of it, the server lives on."""

from __future__ import annotations

import os
import signal
import threading

import httpx
import pytest

from tests.helpers import Server, long_completion, sse_events, wait_until


@pytest.mark.parametrize("engine", ["llamacpp", "mlx"])
def test_killed_handler_mid_stream(server: Server, engine: str) -> None:
    assert server.load("crashy", engine=engine).status_code == 201
    try:
        pid = server.model_info("crashy")["pid"]
        events = []
        with server.client.stream("POST", "/v1/completions", json=long_completion("crashy")) as r:
            for i, event in enumerate(sse_events(r)):
                events.append(event)
                if i == 3:
                    os.kill(pid, signal.SIGKILL)
        assert events[-1] == "[DONE]"
        error = events[-2]["error"]
        assert error["code"] == "model_failed"
        assert "exit code -9" in error["message"]

        info = server.model_info("crashy")
        assert info["status"] == "failed"
        assert "exit code -9" in info["error"]
        r = server.client.post(
            "/v1/completions", json={"model": "crashy", "prompt": "Hi", "max_tokens": 1}
        )
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "model_unavailable"
        # the server and the other model are fine
        health = server.client.get("/health").json()
        assert {d["id"]: d["status"] for d in health["models_detail"]}["crashy"] == "failed"
        ok = server.client.post(
            "/v1/completions", json={"model": "smollm2-135m", "prompt": "Hi", "max_tokens": 1}
        )
        assert ok.status_code == 200
    finally:
        assert server.unload("crashy").status_code == 200


def test_killed_handler_during_a_plain_request(server: Server) -> None:
    assert server.load("crashy2").status_code == 201
    try:
        pid = server.model_info("crashy2")["pid"]
        result: dict[str, httpx.Response] = {}

        def request() -> None:
            body = {**long_completion("crashy2"), "stream": False}
            result["r"] = httpx.post(server.url + "/v1/completions", json=body, timeout=60)

        thread = threading.Thread(target=request)
        thread.start()
        wait_until(
            lambda: (
                server.client.get("/v1/queue/stats").json()["queue_stats"]["models"]["crashy2"][
                    "running"
                ]
                == 1
            )
        )
        os.kill(pid, signal.SIGKILL)
        thread.join(30)
        r = result["r"]
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "model_failed"
        assert "Traceback" not in r.text
    finally:
        server.unload("crashy2")
