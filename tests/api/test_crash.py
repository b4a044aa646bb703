"""A handler that dies mid-request: the client hears of it, the server lives on."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from tests.helpers import Server, long_completion, sse_events, wait_until


@pytest.mark.parametrize("engine", ["llamacpp", "mlx"])
def test_killed_handler_mid_stream_is_restarted(server: Server, engine: str) -> None:
    assert server.load("crashy", engine=engine).status_code == 201
    try:
        pid = server.model_info("crashy")["pid"]
        other_pid = server.model_info("smollm2-135m")["pid"]
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

        # Within 5 s the model answers again, from a new process.
        started = time.monotonic()
        r = server.client.post(
            "/v1/completions", json={"model": "crashy", "prompt": "Hi", "max_tokens": 1}
        )
        assert r.status_code == 200, r.text
        assert time.monotonic() - started < 5, time.monotonic() - started
        info = server.model_info("crashy")
        assert info["status"] == "running"
        assert info["pid"] != pid
        assert info["restarts"] == 1
        assert info["last_exit_code"] == -9
        assert info["last_restart_at"] is not None
        health = server.client.get("/health").json()
        detail = {d["id"]: d for d in health["models_detail"]}
        assert detail["crashy"]["restarts"] == 1
        # The other model never noticed.
        assert detail["smollm2-135m"]["restarts"] == 0
        assert server.model_info("smollm2-135m")["pid"] == other_pid
    finally:
        assert server.unload("crashy").status_code == 200


def test_killed_handler_with_restart_never_stays_failed(server: Server) -> None:
    assert server.load("crashy", restart="never").status_code == 201
    try:
        os.kill(server.model_info("crashy")["pid"], signal.SIGKILL)
        wait_until(lambda: server.model_info("crashy")["status"] == "failed")
        info = server.model_info("crashy")
        assert "exit code -9" in info["error"]
        assert info["last_exit_code"] == -9
        r = server.client.post(
            "/v1/completions", json={"model": "crashy", "prompt": "Hi", "max_tokens": 1}
        )
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "model_unavailable"
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
