"""Structured outputs: the answer always parses and validates, on both engines."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from tests.helpers import Server, chat_for, sse_events

ADDRESS = {
    "type": "object",
    "properties": {
        "address": {
            "type": "object",
            "properties": {
                "street": {"type": "string", "maxLength": 40},
                "city": {"type": "string", "maxLength": 30},
                "state": {
                    "type": "string",
                    "description": "2 letter abbreviation of the state",
                    "maxLength": 2,
                },
                "zip": {"type": "string", "description": "5 digit zip code", "maxLength": 5},
            },
            "required": ["street", "city", "state", "zip"],
        }
    },
    "required": ["address"],
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "address": ADDRESS,
    "enum": {
        "type": "object",
        "properties": {
            "color": {"type": "string", "enum": ["red", "green", "blue"]},
            "confident": {"type": "boolean"},
        },
        "required": ["color", "confident"],
        "additionalProperties": False,
    },
    "array": {
        "type": "object",
        "properties": {
            "fruits": {
                "type": "array",
                "items": {"type": "string", "maxLength": 15},
                "minItems": 1,
                "maxItems": 3,
            }
        },
        "required": ["fruits"],
        "additionalProperties": False,
    },
    "nested": {
        "type": "object",
        "properties": {
            "person": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 20},
                    "age": {"type": "integer", "minimum": 0, "maximum": 150},
                    "pets": {
                        "type": "array",
                        "maxItems": 2,
                        "items": {
                            "type": "object",
                            "properties": {
                                "kind": {"enum": ["cat", "dog"]},
                                "name": {"type": "string", "maxLength": 10},
                            },
                            "required": ["kind", "name"],
                            "additionalProperties": False,
                        },
                    },
                },
                "required": ["name", "age", "pets"],
                "additionalProperties": False,
            }
        },
        "required": ["person"],
        "additionalProperties": False,
    },
}

PROMPTS = {
    "address": "Please format this address: 1 Hacker Wy Menlo Park CA 94025",
    "enum": "What color is the sky?",
    "array": "Name some fruits.",
    "nested": "Describe Alice, 30, who has a cat named Tom.",
}


def schema_format(name: str) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": SCHEMAS[name]}}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_json_schema_answer_validates(server: Server, model: str, name: str) -> None:
    r = server.client.post(
        "/v1/chat/completions",
        json=chat_for(
            model,
            PROMPTS[name],
            response_format=schema_format(name),
            max_tokens=300,
            temperature=0.8,
            seed=7,
        ),
        timeout=120,
    )
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    jsonschema.validate(json.loads(choice["message"]["content"]), SCHEMAS[name])


def test_json_schema_streamed_in_pieces_validates(server: Server, model: str) -> None:
    body = chat_for(
        model,
        PROMPTS["address"],
        response_format=schema_format("address"),
        max_tokens=300,
        temperature=0,
        stream=True,
    )
    with server.client.stream("POST", "/v1/chat/completions", json=body, timeout=120) as r:
        assert r.status_code == 200
        events = list(sse_events(r))
    assert events[-1] == "[DONE]"
    pieces = [
        e["choices"][0]["delta"].get("content")
        for e in events[:-1]
        if e["choices"] and e["choices"][0]["delta"].get("content")
    ]
    assert len(pieces) > 3, "structured output streams partial JSON, not one blob"
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    jsonschema.validate(json.loads("".join(pieces)), ADDRESS)


def test_json_object_mode_gives_an_object(server: Server, model: str) -> None:
    r = server.client.post(
        "/v1/chat/completions",
        json=chat_for(
            model,
            "List two colours as JSON.",
            response_format={"type": "json_object"},
            max_tokens=200,
            temperature=0,
        ),
        timeout=120,
    )
    assert r.status_code == 200, r.text
    content = r.json()["choices"][0]["message"]["content"]
    assert isinstance(json.loads(content), dict)


def test_text_format_is_unconstrained(server: Server, model: str) -> None:
    r = server.client.post(
        "/v1/chat/completions",
        json=chat_for(
            model,
            "What is the capital of France?",
            response_format={"type": "text"},
            max_tokens=30,
            temperature=0,
        ),
    )
    assert r.status_code == 200
    assert "Paris" in r.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    ("response_format", "param"),
    [
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "bogus"}}},
            "response_format.json_schema.schema",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"minLength": "a"}}},
            "response_format.json_schema.schema",
        ),
        ({"type": "json_schema"}, "response_format.json_schema"),
        ({"type": "xml"}, "response_format.type"),
    ],
)
def test_bad_schema_is_a_400_naming_it(
    server: Server, model: str, response_format: dict[str, Any], param: str
) -> None:
    r = server.client.post(
        "/v1/chat/completions",
        json=chat_for(model, "Hi", response_format=response_format, max_tokens=10),
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_unsupported_construct_is_a_400_naming_it(server: Server, model: str) -> None:
    """A valid schema the engine cannot enforce is refused, never answered unconstrained."""
    schema = {"type": "object", "properties": {"a": {"not": {"type": "string"}}}}
    r = server.client.post(
        "/v1/chat/completions",
        json=chat_for(
            model,
            "Hi",
            max_tokens=10,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        ),
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "response_format.json_schema.schema"
    assert "not" in error["message"]


NUMBER = {
    "type": "object",
    "properties": {"value": {"type": "number"}},
    "required": ["value"],
}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_json_numbers_end_at_temperature_one(server: Server, model: str, seed: int) -> None:
    """Constrained numbers are bounded on both engines (at most 16 integral and
    16 fraction digits): a sampled number cannot run on to max_tokens."""
    r = server.client.post(
        "/v1/chat/completions",
        json=chat_for(
            model,
            "Give me a precise number as JSON.",
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "number", "schema": NUMBER},
            },
            max_tokens=64,
            temperature=1.0,
            seed=seed,
        ),
        timeout=120,
    )
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop", choice
    value = json.loads(choice["message"]["content"])["value"]
    assert isinstance(value, int | float)
