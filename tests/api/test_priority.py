"""Priority through HTTP: a one-slot model held by a long stream, requests
queued behind it run highest priority first; service_tier maps onto it."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from tests.helpers import Server, long_completion, queue_stats, sse_events, wait_until


def _short(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "prompt": "Hi", "max_tokens": 2, "temperature": 0, **extra}


def test_high_priority_overtakes_queued_low_ones(server: Server) -> None:
    assert server.load("prio", max_concurrency=1).status_code == 201
    order: list[str] = []
    statuses: dict[str, int] = {}

    def run(name: str, path: str, body: dict[str, Any]) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            response = client.post(path, json=body)
        statuses[name] = response.status_code
        order.append(name)

    chat_high = {
        "model": "prio",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 2,
        "service_tier": "priority",  # → high
    }
    queued = [
        ("low1", "/v1/completions", _short("prio", priority="batch")),
        ("low2", "/v1/completions", _short("prio", priority=0)),
        ("high", "/v1/chat/completions", chat_high),
    ]
    threads: list[threading.Thread] = []
    try:
        with server.client.stream("POST", "/v1/completions", json=long_completion("prio")) as held:
            events = sse_events(held)
            next(events)  # the only slot is held
            for i, (name, path, body) in enumerate(queued, start=1):
                thread = threading.Thread(target=run, args=(name, path, body))
                thread.start()
                threads.append(thread)
                wait_until(lambda i=i: queue_stats(server, "prio")["queued"] == i)
            assert queue_stats(server, "prio")["queued_by_priority"] == {"0": 2, "2": 1}
        for thread in threads:
            thread.join(60)
        assert statuses == {"low1": 200, "low2": 200, "high": 200}
        assert order == ["high", "low1", "low2"]
        assert queue_stats(server, "prio")["queued_by_priority"] == {}
    finally:
        server.unload("prio")


def test_bad_priority_and_service_tier_are_400_naming_them(server: Server) -> None:
    for body in (
        {"model": "current", "prompt": "Hi", "max_tokens": 1, "priority": "urgent"},
        {"model": "current", "prompt": "Hi", "max_tokens": 1, "priority": 10},
    ):
        response = server.client.post("/v1/completions", json=body)
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "priority"
    embeddings = server.client.post(
        "/v1/embeddings", json={"model": "x", "input": "a", "priority": -1}
    )
    assert embeddings.status_code == 400 and embeddings.json()["error"]["param"] == "priority"
    chat = server.client.post(
        "/v1/chat/completions",
        json={
            "model": "current",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 1,
            "service_tier": "gold",
        },
    )
    assert chat.status_code == 400 and chat.json()["error"]["param"] == "service_tier"
    ok = server.client.post(
        "/v1/chat/completions",
        json={
            "model": "current",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 1,
            "service_tier": "flex",
            "priority": "interactive",
        },
    )
    assert ok.status_code == 200
