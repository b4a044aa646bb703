"""Legacy ``/v1/completions`` over raw HTTP."""

from __future__ import annotations

from tests.helpers import Server, sse_events


def test_completion_shape(server: Server, model: str) -> None:
    r = server.client.post(
        "/v1/completions",
        json={"model": model, "prompt": "Count: 1, 2, 3,", "max_tokens": 6, "temperature": 0},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert body["choices"][0]["text"].startswith(" 4")
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 6


def test_default_max_tokens_is_16(server: Server, model: str) -> None:
    r = server.client.post(
        "/v1/completions", json={"model": model, "prompt": "Once upon a time", "temperature": 0}
    )
    assert r.json()["usage"]["completion_tokens"] <= 16


def test_completion_stop_and_list_prompt(server: Server, model: str) -> None:
    r = server.client.post(
        "/v1/completions",
        json={
            "model": model,
            "prompt": ["Count: 1, 2, 3,"],
            "max_tokens": 30,
            "temperature": 0,
            "stop": " 6",
        },
    )
    body = r.json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["text"] == " 4, 5,"


def test_completion_stream(server: Server, model: str) -> None:
    body = {
        "model": model,
        "prompt": "Count: 1, 2, 3,",
        "max_tokens": 6,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with server.client.stream("POST", "/v1/completions", json=body) as r:
        events = list(sse_events(r))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]).startswith(" 4")
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 6
