"""JSON helpers and event folding."""

from __future__ import annotations

import json

import pytest

from handlers.parsing import Content, Reasoning, ToolCallArgs, ToolCallStart, collect, merge
from handlers.parsing.jsontext import ObjectScanner, completion, new_call_id, typed_value


@pytest.mark.parametrize(
    "prefix",
    [
        "{",
        '{"a',
        '{"a"',
        '{"a":',
        '{"a": 1',
        '{"a": 1,',
        '{"a": [1, {"b": tr',
        '{"a": "x\\',
        '{"a": "\\u00',
        '{"a": fals',
        '{"a": nu',
        '{"a": -',
        '{"a": 1.',
        '{"a": {"b": [',
    ],
)
def test_completion_closes_a_cut_off_object(prefix: str) -> None:
    value = json.loads(prefix + completion(prefix))
    assert isinstance(value, dict)


def test_completion_of_a_whole_object_is_empty() -> None:
    assert completion('{"a": [1, 2]}') == ""


def test_object_scanner_stops_at_the_closing_brace() -> None:
    scanner = ObjectScanner()
    assert scanner.feed('{"a": "}{\\"",') == 13 and not scanner.done
    assert scanner.feed(' "b": [1]}} tail') == 10 and scanner.done
    assert scanner.text == '{"a": "}{\\"", "b": [1]}'


@pytest.mark.parametrize(
    ("raw", "schema", "expected"),
    [
        ("Paris", {"type": "string"}, '"Paris"'),
        ("42", {"type": "string"}, '"42"'),
        ("42", None, '"42"'),
        (" 42 ", {"type": "integer"}, "42"),
        ("4.5", {"type": "number"}, "4.5"),
        ("True", {"type": "boolean"}, "true"),
        ("false", {"type": "boolean"}, "false"),
        ("null", {"type": ["string", "null"]}, "null"),
        ("hello", {"type": ["string", "null"]}, '"hello"'),
        ('{"k": [1, 2]}', {"type": "object"}, '{"k": [1, 2]}'),
        ("{'k': 'v'}", {"type": "object"}, '{"k": "v"}'),
        ("[1, 'a']", {"type": "array"}, '[1, "a"]'),
        ("three", {"type": "integer"}, '"three"'),
        ("NaN", {"type": "number"}, '"NaN"'),
        ("a", {"enum": ["a", "b"]}, '"a"'),
        ("7", {"anyOf": [{"type": "integer"}, {"type": "string"}]}, "7"),
        ("café", {"type": "string"}, '"café"'),
    ],
)
def test_typed_value(raw: str, schema: dict[str, object] | None, expected: str) -> None:
    assert typed_value(raw, schema) == expected


def test_call_ids() -> None:
    ids = {new_call_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 29 and i.startswith("call_") for i in ids)


def test_merge_and_collect() -> None:
    events = merge(
        [
            Content("a"),
            Content(""),
            Content("b"),
            Reasoning("r"),
            ToolCallStart(0, "call_x", "f"),
            ToolCallArgs(0, "{"),
            ToolCallArgs(0, "}"),
            ToolCallStart(1, "call_y", "g"),
            ToolCallArgs(1, "{}"),
        ]
    )
    assert events[:2] == [Content("ab"), Reasoning("r")]
    assert events[3] == ToolCallArgs(0, "{}")
    content, reasoning, calls = collect(events)
    assert (content, reasoning) == ("ab", "r")
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call_x", "f", "{}"),
        ("call_y", "g", "{}"),
    ]
