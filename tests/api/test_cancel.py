"""A client that goes away cancels its work in the handler."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import Server, long_completion, queue_stats, sse_events, wait_until


def tokens_generated(server: Server, model_id: str) -> int:
    return int(server.model_info(model_id)["tokens_generated"])


@pytest.fixture(params=["llamacpp", "mlx"])
def one_slot(server: Server, request: pytest.FixtureRequest) -> Iterator[str]:
    """A one-slot copy of the embedded model on each engine."""
    model_id = f"cxl-{request.param}"
    assert (
        server.load(model_id, engine=request.param, max_concurrency=1, queue_size=4).status_code
        == 201
    )
    yield model_id
    server.unload(model_id)


def test_disconnect_mid_stream_stops_generation(server: Server, one_slot: str) -> None:
    before = tokens_generated(server, one_slot)
    received = 0
    with server.client.stream("POST", "/v1/completions", json=long_completion(one_slot)) as r:
        for event in sse_events(r):
            if event != "[DONE]" and event["choices"] and event["choices"][0]["text"]:
                received += 1
            if received == 20:
                break
    # leaving the block closes the connection mid-stream
    wait_until(lambda: queue_stats(server, one_slot)["running"] == 0)
    after = wait_until(lambda: (n := tokens_generated(server, one_slot)) > before and n)
    extra = after - before - received
    assert extra <= 3, f"the handler generated {extra} tokens after the client left"
    # the slot is free for the next request
    r2 = server.client.post(
        "/v1/completions", json={"model": one_slot, "prompt": "Hi", "max_tokens": 2}, timeout=10
    )
    assert r2.status_code == 200


def test_disconnect_while_queued_leaves_the_queue(server: Server, one_slot: str) -> None:
    before = queue_stats(server, one_slot)
    with server.client.stream("POST", "/v1/completions", json=long_completion(one_slot)) as holder:
        events = sse_events(holder)
        next(events)
        with httpx.Client(base_url=server.url) as impatient:
            with pytest.raises(httpx.ReadTimeout):
                impatient.post(
                    "/v1/completions",
                    json={"model": one_slot, "prompt": "Hi", "max_tokens": 2},
                    timeout=httpx.Timeout(10, read=1.0),
                )
        # the impatient client closed its connection: it no longer waits for a slot
        wait_until(lambda: queue_stats(server, one_slot)["queued"] == 0, timeout=5)
    after = wait_until(lambda: (s := queue_stats(server, one_slot))["running"] == 0 and s)
    assert after["completed"] == before["completed"] + 1  # only the holder ever ran
    assert after["timed_out"] == before["timed_out"]
