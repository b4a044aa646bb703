"""Top-level request fields over HTTP: OpenAI's no-effect fields are accepted,
fields whose being ignored would change the answer are a 400 naming them,
vendor extensions are honoured, unknown fields are accepted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.helpers import SYSTEM, Server, chat_body

NO_EFFECT = {
    "service_tier": "auto",
    "store": True,
    "metadata": {"customer": "acme"},
    "user": "user-1",
    "safety_identifier": "hash-of-user",
    "prompt_cache_key": "my-app",
    "prompt_cache_retention": "24h",
    "prompt_cache_options": {"mode": "implicit", "ttl": "30m"},
    "prediction": {"type": "content", "content": "Paris"},
}


def chat(server: Server, **extra: Any) -> Any:
    body = chat_body(
        "What is the capital of France?", **{"temperature": 0, "max_tokens": 2, **extra}
    )
    return server.client.post("/v1/chat/completions", json=body)


def error_param(response: Any) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] in error["message"]
    return str(error["param"])


@pytest.mark.parametrize(("field", "value"), NO_EFFECT.items(), ids=list(NO_EFFECT))
def test_no_effect_field_is_accepted(server: Server, field: str, value: Any) -> None:
    r = chat(server, **{field: value})
    assert r.status_code == 200, r.text


def test_no_effect_fields_do_not_change_the_answer(server: Server) -> None:
    plain = chat(server, max_tokens=12).json()["choices"][0]["message"]["content"]
    tagged = chat(server, max_tokens=12, **NO_EFFECT).json()["choices"][0]["message"]["content"]
    assert tagged == plain


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("modalities", ["text"]),
        ("verbosity", "medium"),
        ("function_call", "none"),
        ("audio", None),
        ("web_search_options", None),
        ("stream_options", {"include_usage": False, "include_obfuscation": False}),
    ],
)
def test_refusable_field_at_its_default_is_accepted(server: Server, field: str, value: Any) -> None:
    assert chat(server, **{field: value}).status_code == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("audio", {"format": "wav", "voice": "alloy"}),
        ("modalities", ["text", "audio"]),
        ("functions", [{"name": "get_weather", "parameters": {"type": "object"}}]),
        ("function_call", {"name": "get_weather"}),
        ("moderation", {"model": "omni-moderation-latest"}),
        ("verbosity", "low"),
        ("web_search_options", {}),
    ],
)
def test_refused_chat_field_is_a_400_naming_it(server: Server, field: str, value: Any) -> None:
    assert error_param(chat(server, **{field: value})) == field


def test_refused_field_is_named_in_a_stream_too(server: Server) -> None:
    assert error_param(chat(server, stream=True, verbosity="high")) == "verbosity"


@pytest.mark.parametrize(("field", "value"), [("echo", True), ("suffix", "x"), ("best_of", 3)])
def test_refused_completions_field_is_a_400_naming_it(
    server: Server, field: str, value: Any
) -> None:
    body = {"model": "current", "prompt": "Hello", "max_tokens": 2, field: value}
    assert error_param(server.client.post("/v1/completions", json=body)) == field


def test_declared_field_of_the_wrong_type_is_a_400(server: Server) -> None:
    assert error_param(chat(server, store="yes")) == "store"
    assert error_param(chat(server, reasoning_effort="extreme")) == "reasoning_effort"
    assert error_param(chat(server, min_tokens=-1)) == "min_tokens"


def test_unknown_fields_are_accepted(server: Server) -> None:
    r = chat(server, cache_prompt=True, mirostat=0, some_future_field={"a": 1})
    assert r.status_code == 200, r.text
    body = {"model": "current", "prompt": "Hello", "max_tokens": 2, "typical_p": 1.0}
    assert server.client.post("/v1/completions", json=body).status_code == 200


@pytest.mark.parametrize("effort", ["none", "minimal", "low", "medium", "high", "xhigh"])
def test_reasoning_effort_is_accepted_by_a_model_without_a_thinking_switch(
    server: Server, effort: str
) -> None:
    assert chat(server, reasoning_effort=effort).status_code == 200


@pytest.fixture
def sdk(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_sdk_with_every_no_effect_field(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model="current",
        messages=[SYSTEM, {"role": "user", "content": "Say hi."}],
        max_completion_tokens=3,
        service_tier="auto",
        store=False,
        metadata={"run": "1"},
        user="u",
        safety_identifier="s",
        prompt_cache_key="k",
        prompt_cache_retention="in_memory",
        modalities=["text"],
        verbosity="medium",
        reasoning_effort="low",
        extra_body={"top_k": 20, "ignore_eos": False, "min_tokens": 0},
    )
    assert completion.choices[0].message.content is not None


def test_sdk_refused_field(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(
            model="current",
            messages=[{"role": "user", "content": "Hi"}],
            web_search_options={"search_context_size": "low"},
        )
    assert info.value.body["param"] == "web_search_options"  # type: ignore[index]


def test_schema_outside_json_object_is_a_400(server: Server) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object"}},
        "schema": {"type": "object"},
    }
    assert error_param(chat(server, response_format=fmt)) == "response_format.schema"


def test_min_tokens_above_max_tokens_is_a_400(server: Server) -> None:
    assert error_param(chat(server, max_tokens=4, min_tokens=8)) == "min_tokens"


# --- vendor extensions, honoured ---------------------------------------------


def test_json_object_with_a_schema_constrains_the_answer(server: Server) -> None:
    schema = {
        "type": "object",
        "properties": {"zebra_count": {"type": "integer"}},
        "required": ["zebra_count"],
        "additionalProperties": False,
    }
    body = chat_body(
        "How many legs does a cat have? Answer in JSON.",
        temperature=0,
        max_tokens=40,
        response_format={"type": "json_object", "schema": schema},
    )
    r = server.client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    answer = json.loads(r.json()["choices"][0]["message"]["content"])
    assert set(answer) == {"zebra_count"}
    assert isinstance(answer["zebra_count"], int)


SHORT = "Reply with one word: yes or no. Is water wet?"


def short_answer(server: Server, **extra: Any) -> dict[str, Any]:
    body = chat_body(SHORT, temperature=0, max_tokens=48, **extra)
    r = server.client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def test_short_answer_stops_early_by_itself(server: Server) -> None:
    """The baseline the two tests below need: without them the answer ends
    well before max_tokens."""
    body = short_answer(server)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] < 24


def test_ignore_eos_generates_to_max_tokens(server: Server) -> None:
    body = short_answer(server, ignore_eos=True)
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 48


def test_min_tokens_delays_the_end(server: Server) -> None:
    body = short_answer(server, min_tokens=30)
    assert body["usage"]["completion_tokens"] >= 30
