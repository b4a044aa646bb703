"""Tool calling on both engines: forced calls, streamed call deltas, round trips."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest

from tests.helpers import Server, chat_for, sse_events

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 30},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a timezone.",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string", "maxLength": 30}},
            "required": ["timezone"],
            "additionalProperties": False,
        },
    },
}
MARKUP = ("<tool_call>", "</tool_call>", '"arguments"')


def ask(model: str, **extra: Any) -> dict[str, Any]:
    return chat_for(
        model,
        "What is the weather in Paris?",
        tools=[WEATHER, TIME],
        max_tokens=120,
        temperature=0,
        **extra,
    )


def check_call(call: dict[str, Any], tool: dict[str, Any]) -> None:
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    assert call["function"]["name"] == tool["function"]["name"]
    arguments = json.loads(call["function"]["arguments"])
    jsonschema.validate(arguments, tool["function"]["parameters"])


def test_required_tool_choice_forces_a_valid_call(server: Server, model: str) -> None:
    r = server.client.post(
        "/v1/chat/completions",
        json=ask(model, tool_choice="required", parallel_tool_calls=False),
        timeout=120,
    )
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert not message["content"]
    calls = message["tool_calls"]
    assert len(calls) == 1
    tool = WEATHER if calls[0]["function"]["name"] == "get_weather" else TIME
    check_call(calls[0], tool)


def test_named_tool_choice_calls_that_function(server: Server, model: str) -> None:
    choice_of = {"type": "function", "function": {"name": "get_time"}}
    r = server.client.post(
        "/v1/chat/completions", json=ask(model, tool_choice=choice_of), timeout=120
    )
    assert r.status_code == 200, r.text
    calls = r.json()["choices"][0]["message"]["tool_calls"]
    assert calls and all(c["function"]["name"] == "get_time" for c in calls)
    for call in calls:
        check_call(call, TIME)


def test_streamed_call_arrives_as_openai_deltas(server: Server, model: str) -> None:
    choice_of = {"type": "function", "function": {"name": "get_weather"}}
    body = ask(model, tool_choice=choice_of, stream=True, parallel_tool_calls=False)
    with server.client.stream("POST", "/v1/chat/completions", json=body, timeout=120) as r:
        assert r.status_code == 200
        events = list(sse_events(r))
    assert events[-1] == "[DONE]"
    deltas = [e["choices"][0]["delta"] for e in events[:-1] if e["choices"]]
    parts = [part for d in deltas for part in d.get("tool_calls") or []]
    assert parts, "no tool-call deltas"
    first = parts[0]
    assert first["index"] == 0 and first["id"].startswith("call_")
    assert first["type"] == "function"
    assert first["function"]["name"] == "get_weather"
    assert all("id" not in p for p in parts[1:]), "only the first delta of a call has its id"
    assert len(parts) > 2, "arguments stream in fragments"
    arguments = "".join(p["function"].get("arguments", "") for p in parts)
    jsonschema.validate(json.loads(arguments), WEATHER["function"]["parameters"])
    content = "".join(d.get("content") or "" for d in deltas)
    assert not any(marker in content for marker in MARKUP), content
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_choice_none_answers_in_text(server: Server, model: str) -> None:
    r = server.client.post("/v1/chat/completions", json=ask(model, tool_choice="none"), timeout=120)
    assert r.status_code == 200
    message = r.json()["choices"][0]["message"]
    assert "tool_calls" not in message
    assert message["content"]


def test_a_call_and_its_result_round_trip(server: Server, model: str) -> None:
    """An assistant turn with tool_calls and the tool's answer go back into the prompt."""
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"city": "Paris", "unit": "celsius"}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": '{"temperature": 21}'},
    ]
    r = server.client.post(
        "/v1/chat/completions",
        json={
            "model": model,
            "messages": messages,
            "tools": [WEATHER],
            "max_tokens": 40,
            "temperature": 0,
        },
        timeout=120,
    )
    assert r.status_code == 200, r.text
    message = r.json()["choices"][0]["message"]
    assert message["content"]


def test_openai_sdk_reads_tool_calls(server: Server, model: str) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=120)
    completion = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Weather in Rome?"}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=120,
        temperature=0,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert calls and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    json.loads(calls[0].function.arguments)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
    ],
)
def test_bad_tool_fields_are_400s(
    server: Server, model: str, extra: dict[str, Any], param: str
) -> None:
    body = ask(model)
    body.update(extra)
    r = server.client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"].startswith(param)


def test_tool_message_needs_its_call_id(server: Server, model: str) -> None:
    body = chat_for(model, "Hi", max_tokens=5)
    body["messages"].append({"role": "tool", "content": "42"})
    r = server.client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "messages[2].tool_call_id"


def test_auto_choice_with_a_parser_model(server: Server) -> None:
    """A model loaded with a tool_call_parser answers tools either way, never with markup."""
    r = server.load("smollm2-tools", tool_call_parser="qwen3")
    assert r.status_code == 201, r.text
    try:
        r = server.client.post(
            "/v1/chat/completions", json=ask("smollm2-tools", tool_choice="auto"), timeout=120
        )
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        message = choice["message"]
        if choice["finish_reason"] == "tool_calls":
            assert message["tool_calls"]
        else:
            assert not any(marker in (message["content"] or "") for marker in MARKUP[:2])
    finally:
        server.unload("smollm2-tools")


def test_unknown_parser_is_refused_at_load(server: Server) -> None:
    r = server.load("smollm2-badparser", tool_call_parser="nonsense")
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "tool_call_parser"
