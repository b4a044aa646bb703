"""SIGHUP with a changed model while its queue holds requests: the running
request finishes on the old handler, the queued ones complete with 200 on
the new one (real server, real llama.cpp handler, real HTTP)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from bodega.settings import embedded_lm_path
from tests.helpers import queue_stats, sse_events, start_server, stop_server, wait_until

pytestmark = pytest.mark.timeout(400)


def config_text(context_length: int) -> str:
    return (  # the drain waits up to graceful_timeout
        "server: {graceful_timeout: 120}\n"
        f"models:\n  - model_path: {embedded_lm_path()}\n    model_id: q\n"
        f"    context_length: {context_length}\n    max_concurrency: 1\n"
        "    queue_size: 8\n    queue_timeout: 240\n"
    )


def test_queued_requests_survive_a_reload(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(config_text(512))
    server = start_server("--config", str(config))
    old_pid = server.model_info("q")["pid"]
    events: list[Any] = []
    replies: list[httpx.Response] = []

    def running() -> None:
        body = {"model": "q", "prompt": "Count: 1, 2, 3,", "max_tokens": 40, "stream": True}
        with httpx.Client(base_url=server.url, timeout=240) as client:
            with client.stream("POST", "/v1/completions", json={**body, "temperature": 0}) as r:
                events.extend(sse_events(r))

    def queued() -> None:
        body = {"model": "q", "prompt": "Hello", "max_tokens": 8, "temperature": 0}
        with httpx.Client(base_url=server.url, timeout=240) as client:
            replies.append(client.post("/v1/completions", json=body))

    try:
        threads = [threading.Thread(target=running)]
        threads[0].start()
        wait_until(lambda: queue_stats(server, "q")["running"] == 1, timeout=30)
        threads += [threading.Thread(target=queued) for _ in range(3)]
        for thread in threads[1:]:
            thread.start()
        wait_until(lambda: queue_stats(server, "q")["queued"] == 3, timeout=30)
        config.write_text(config_text(1024))
        server.process.send_signal(signal.SIGHUP)
        for thread in threads:
            thread.join(240)
        assert events[-1] == "[DONE]"  # the running stream finished, on the old handler
        assert not any("error" in e for e in events if isinstance(e, dict))
        chunks = [e for e in events if isinstance(e, dict)]
        assert chunks[-1]["choices"][0]["finish_reason"] in ("length", "stop")
        assert [r.status_code for r in replies] == [200, 200, 200]
        assert all(r.json()["choices"][0]["text"] for r in replies)
        info = server.model_info("q")
        assert info["pid"] != old_pid and info["context_length"] == 1024
        assert info["status"] == "running" and info["restarts"] == 0
    finally:
        stop_server(server)
