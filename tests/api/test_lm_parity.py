"""The same request rules on both language-model engines, through the server:
the context budget (a prompt must leave room for one token; max_tokens beyond
the context is capped, not refused; unset max_tokens runs to the context's
end: ``max_tokens: null``) and ``prompt_cache_size: 0``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import Server, chat_for

ENGINES = ["llamacpp", "mlx"]
CONTEXT = 64
COUNTING = "Count: 1, 2, 3, 4, 5,"  # greedy continuation counts on and on


@pytest.fixture(scope="module", params=ENGINES)
def small(request: pytest.FixtureRequest, server: Server) -> Iterator[str]:
    """The embedded model with a 64-token context on each engine."""
    engine = str(request.param)
    model_id = f"smollm2-ctx{CONTEXT}-{engine}"
    r = server.load(model_id, engine=engine, context_length=CONTEXT)
    assert r.status_code == 201, r.text
    yield model_id
    server.unload(model_id)


def complete(server: Server, model: str, **fields: object) -> dict[str, object]:
    r = server.client.post(
        "/v1/completions",
        json={"model": model, "prompt": COUNTING, "temperature": 0, **fields},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


@pytest.mark.parametrize("max_tokens", [1000, None], ids=["too-many", "null"])
def test_generation_runs_to_the_end_of_the_context(
    server: Server, small: str, max_tokens: int | None
) -> None:
    # An explicit null: the legacy completions endpoint defaults to 16 tokens.
    body = complete(server, small, max_tokens=max_tokens)
    usage = body["usage"]
    assert isinstance(usage, dict)
    assert usage["prompt_tokens"] + usage["completion_tokens"] == CONTEXT
    assert body["choices"][0]["finish_reason"] == "length"  # type: ignore[index]


def test_a_prompt_that_fills_the_context_is_a_400(server: Server, small: str) -> None:
    long_text = " a" * (CONTEXT + 10)
    r = server.client.post(
        "/v1/completions", json={"model": small, "prompt": long_text, "max_tokens": 1}
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "prompt")
    r = server.client.post("/v1/chat/completions", json=chat_for(small, long_text, max_tokens=1))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")


@pytest.mark.parametrize("engine", ENGINES)
def test_prompt_cache_size_0_reuses_no_prompt(server: Server, engine: str) -> None:
    model_id = f"smollm2-nocache-{engine}"
    r = server.load(model_id, engine=engine, prompt_cache_size=0)
    assert r.status_code == 201, r.text
    try:
        for _ in range(2):
            r = server.client.post(
                "/v1/chat/completions",
                json=chat_for(model_id, "What is the capital of France?", max_tokens=2),
                timeout=120,
            )
            assert r.status_code == 200, r.text
            assert r.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    finally:
        server.unload(model_id)
