"""logprobs, top_logprobs, logit_bias, n > 1 and seed on both engines."""

from __future__ import annotations

import math

from tests.helpers import Server, chat_for, sse_events


def test_chat_logprobs_cover_every_token(server: Server, model: str) -> None:
    r = server.client.post(
        "/v1/chat/completions",
        json=chat_for(
            model,
            "What is the capital of France?",
            max_tokens=12,
            temperature=0,
            logprobs=True,
            top_logprobs=3,
        ),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    entries = body["choices"][0]["logprobs"]["content"]
    assert len(entries) == body["usage"]["completion_tokens"]
    text = body["choices"][0]["message"]["content"]
    assert "".join(e["token"] for e in entries).strip() == text.strip()
    for entry in entries:
        assert entry["logprob"] <= 0.0
        assert bytes(entry["bytes"]).decode("utf-8", errors="replace") == entry["token"]
        top = entry["top_logprobs"]
        assert len(top) == 3
        values = [t["logprob"] for t in top]
        assert values == sorted(values, reverse=True)
        # Greedy decoding picks the most likely token.
        assert math.isclose(entry["logprob"], values[0], abs_tol=1e-3)


def test_chat_logprobs_stream_with_the_tokens(server: Server, model: str) -> None:
    body = chat_for(model, "Say hello.", max_tokens=8, temperature=0, logprobs=True, stream=True)
    with server.client.stream("POST", "/v1/chat/completions", json=body) as r:
        events = [e for e in sse_events(r) if e != "[DONE]"]
    entries = [
        entry
        for e in events
        if e["choices"] and e["choices"][0].get("logprobs")
        for entry in e["choices"][0]["logprobs"]["content"]
    ]
    assert len(entries) == 8
    assert all(e["top_logprobs"] == [] for e in entries)


def test_no_logprobs_unless_asked(server: Server, model: str) -> None:
    r = server.client.post("/v1/chat/completions", json=chat_for(model, "Hi", max_tokens=3))
    assert r.json()["choices"][0]["logprobs"] is None


def test_top_logprobs_needs_logprobs(server: Server, model: str) -> None:
    r = server.client.post(
        "/v1/chat/completions", json=chat_for(model, "Hi", max_tokens=3, top_logprobs=2)
    )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "top_logprobs"


def test_completion_logprobs(server: Server, model: str) -> None:
    r = server.client.post(
        "/v1/completions",
        json={
            "model": model,
            "prompt": "One, two,",
            "max_tokens": 6,
            "logprobs": 2,
            "temperature": 0,
        },
    )
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    logprobs = choice["logprobs"]
    assert len(logprobs["tokens"]) == 6 == len(logprobs["token_logprobs"])
    assert "".join(logprobs["tokens"]) == choice["text"]
    assert all(len(top) <= 2 for top in logprobs["top_logprobs"])
    assert logprobs["text_offset"][0] == 0
    assert logprobs["text_offset"] == sorted(logprobs["text_offset"])


def test_logit_bias_forces_a_token(server: Server, model: str) -> None:
    """A +100 bias on one token id makes every generated token that token."""
    r = server.client.post(
        "/v1/chat/completions",
        json=chat_for(
            model, "Hi", max_tokens=5, temperature=0, logit_bias={"330": 100}, logprobs=True
        ),
    )
    assert r.status_code == 200, r.text
    tokens = [e["token"] for e in r.json()["choices"][0]["logprobs"]["content"]]
    assert len(tokens) == 5 and len(set(tokens)) == 1, tokens


def test_bad_logit_bias_is_a_400(server: Server, model: str) -> None:
    for bias, param in (
        ({"abc": 1}, "logit_bias"),
        ({"5": 500}, "logit_bias"),
        ({"99999999": 1}, "logit_bias"),
    ):
        r = server.client.post(
            "/v1/chat/completions", json=chat_for(model, "Hi", max_tokens=3, logit_bias=bias)
        )
        assert r.status_code == 400, (bias, r.text)
        assert r.json()["error"]["param"].startswith(param)


def test_n_gives_several_choices(server: Server, model: str) -> None:
    r = server.client.post(
        "/v1/chat/completions",
        json=chat_for(model, "Tell me a word.", max_tokens=8, n=3, temperature=1.0, seed=1),
        timeout=120,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert all(c["message"]["content"] for c in body["choices"])
    assert body["usage"]["completion_tokens"] >= 3  # every choice counts


def test_n_streams_each_choice_with_its_index(server: Server, model: str) -> None:
    body = chat_for(
        model,
        "Tell me a word.",
        max_tokens=6,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    with server.client.stream("POST", "/v1/chat/completions", json=body, timeout=120) as r:
        events = [e for e in sse_events(r) if e != "[DONE]"]
    finished = [
        e["choices"][0]["index"]
        for e in events
        if e["choices"] and e["choices"][0]["finish_reason"]
    ]
    assert sorted(finished) == [0, 1]
    assert events[-1]["usage"]["completion_tokens"] > 0


def test_seed_makes_sampling_reproducible(server: Server, model: str) -> None:
    def sample() -> str:
        r = server.client.post(
            "/v1/chat/completions",
            json=chat_for(
                model, "Write a strange word.", max_tokens=16, temperature=1.5, seed=1234
            ),
        )
        return str(r.json()["choices"][0]["message"]["content"])

    assert sample() == sample()
