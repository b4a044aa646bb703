"""Admission: max_concurrency running, queue_size waiting, 429 and 504."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from tests.helpers import Server, long_completion, queue_stats, sse_events, wait_until


def short(model: str) -> dict[str, Any]:
    return {"model": model, "prompt": "Hi", "max_tokens": 2}


def test_full_queue_is_429_and_waiting_too_long_is_504(server: Server) -> None:
    assert server.load("adm", max_concurrency=1, queue_size=1, queue_timeout=2).status_code == 201
    results: dict[str, httpx.Response] = {}

    def queued_request() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            results["queued"] = client.post("/v1/completions", json=short("adm"))

    try:
        with server.client.stream("POST", "/v1/completions", json=long_completion("adm")) as holder:
            events = sse_events(holder)  # keep it referenced: closing it closes the stream
            next(events)  # generating: the only slot is held
            waiter = threading.Thread(target=queued_request)
            waiter.start()
            wait_until(lambda: queue_stats(server, "adm")["queued"] == 1)

            rejected = server.client.post("/v1/completions", json=short("adm"))
            assert rejected.status_code == 429
            assert int(rejected.headers["Retry-After"]) >= 1
            assert rejected.json()["error"]["code"] == "queue_full"
            assert rejected.json()["error"]["type"] == "rate_limit_error"

            waiter.join(15)
            timed_out = results["queued"]
            assert timed_out.status_code == 504
            assert timed_out.json()["error"]["code"] == "queue_timeout"
        stats = wait_until(
            lambda: (s := queue_stats(server, "adm"))["running"] == 0 and s, timeout=10
        )
        assert stats["rejected"] == 1
        assert stats["timed_out"] == 1
        assert stats["queued"] == 0
        # the slot is free again
        assert server.client.post("/v1/completions", json=short("adm")).status_code == 200
    finally:
        server.unload("adm")


def test_concurrent_requests_run_in_parallel_slots(server: Server) -> None:
    assert server.load("par", max_concurrency=4).status_code == 201
    try:
        streams = [
            server.client.stream("POST", "/v1/completions", json=long_completion("par"))
            for _ in range(4)
        ]
        responses = [s.__enter__() for s in streams]
        try:
            readers = [sse_events(r) for r in responses]
            for r, reader in zip(responses, readers, strict=True):
                assert r.status_code == 200
                next(reader)
            stats = queue_stats(server, "par")
            assert stats["running"] == 4 and stats["queued"] == 0
        finally:
            for s in streams:
                s.__exit__(None, None, None)
        wait_until(lambda: queue_stats(server, "par")["running"] == 0)
    finally:
        server.unload("par")
