"""Chat completions against the real server and the real embedded model."""

from __future__ import annotations

from tests.helpers import Server, chat_for, sse_events


def test_answers_the_capital_of_france(server: Server, model: str) -> None:
    r = server.client.post(
        "/v1/chat/completions",
        json=chat_for(model, "What is the capital of France?", temperature=0, max_tokens=30),
    )
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == model
    assert isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert "Paris" in choice["message"]["content"]
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] > 10
    assert usage["completion_tokens"] > 3
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert "cached_tokens" in usage["prompt_tokens_details"]


def test_max_tokens_ends_with_length(server: Server, model: str) -> None:
    for field in ("max_tokens", "max_completion_tokens"):
        r = server.client.post(
            "/v1/chat/completions",
            json=chat_for(model, "Write a long story about a dragon.", **{field: 5}),
        )
        body = r.json()
        assert body["choices"][0]["finish_reason"] == "length", field
        assert body["usage"]["completion_tokens"] == 5


def test_repeated_prefix_reports_cached_tokens(server: Server, model: str) -> None:
    body = chat_for(model, "Name three colours of the rainbow.", temperature=0, max_tokens=4)
    server.client.post("/v1/chat/completions", json=body)
    again = server.client.post("/v1/chat/completions", json=body).json()
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] > 0


def test_stop_sequence_ends_generation(server: Server, model: str) -> None:
    base = chat_for(model, "What is the capital of France?", temperature=0, max_tokens=30)
    full = server.client.post("/v1/chat/completions", json=base).json()
    text = full["choices"][0]["message"]["content"]
    assert "Paris" in text
    stopped = server.client.post("/v1/chat/completions", json={**base, "stop": ["Paris"]}).json()
    assert stopped["choices"][0]["finish_reason"] == "stop"
    assert stopped["choices"][0]["message"]["content"] == text[: text.index("Paris")]


def test_seed_makes_sampling_reproducible(server: Server, model: str) -> None:
    body = chat_for(model, "Tell me a fun fact.", temperature=1.0, seed=1234, max_tokens=20)
    first = server.client.post("/v1/chat/completions", json=body).json()
    second = server.client.post("/v1/chat/completions", json=body).json()
    assert first["choices"][0]["message"]["content"] == second["choices"][0]["message"]["content"]


def test_sampling_parameters_are_accepted(server: Server, model: str) -> None:
    body = chat_for(
        model,
        "Hi",
        max_tokens=3,
        temperature=0.7,
        top_p=0.9,
        top_k=40,
        min_p=0.05,
        presence_penalty=0.5,
        frequency_penalty=0.5,
        repetition_penalty=1.1,
        user="test-user",
        n=1,
        unknown_extension_field={"ignored": True},
    )
    r = server.client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] <= 3


def test_content_parts_of_text_are_joined(server: Server, model: str) -> None:
    body = {
        "model": model,
        "messages": [
            {
                "role": "system",
                "content": [{"type": "text", "text": "You are a helpful assistant."}],
            },
            {
                "role": "user",
                "content": [{"type": "text", "text": "What is the capital of France?"}],
            },
        ],
        "temperature": 0,
        "max_tokens": 30,
    }
    r = server.client.post("/v1/chat/completions", json=body)
    assert "Paris" in r.json()["choices"][0]["message"]["content"]


def test_stream_has_openai_chunks_and_usage(server: Server, model: str) -> None:
    body = chat_for(
        model,
        "What is the capital of France?",
        temperature=0,
        max_tokens=30,
        stream=True,
        stream_options={"include_usage": True},
    )
    with server.client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(r))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert "Paris" in text
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [f["choices"][0]["finish_reason"] for f in finals] == ["stop"]
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] > 3
    assert all(c["usage"] is None for c in chunks[:-1])


def test_stream_without_usage_has_no_usage_chunk(server: Server, model: str) -> None:
    body = chat_for(model, "Hi", max_tokens=3, stream=True)
    with server.client.stream("POST", "/v1/chat/completions", json=body) as r:
        events = list(sse_events(r))
    assert events[-1] == "[DONE]"
    assert all(e["choices"] for e in events[:-1])
    assert events[-2]["choices"][0]["finish_reason"] == "length"


def test_prompt_longer_than_context_is_400(server: Server, model: str) -> None:
    body = chat_for(model, "hello " * 9000, max_tokens=5)
    r = server.client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert "context length" in error["message"]
    streamed = server.client.post("/v1/chat/completions", json={**body, "stream": True})
    assert streamed.status_code == 400
    assert streamed.json()["error"]["code"] == "context_length_exceeded"
