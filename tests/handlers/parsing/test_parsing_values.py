"""JSON helpers and event folding."""

from __future__ import annotations

import json

import pytest

from handlers.parsing import Content, Reasoning, ToolCallArgs, ToolCallStart, collect, merge
from handlers.parsing.jsonstream import ArgsStream, lenient_object
from handlers.parsing.jsontext import completion, new_call_id, typed_value


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


def _stream(text: str, step: int = 1) -> tuple[str, ArgsStream]:
    stream = ArgsStream()
    sent = ""
    for i in range(0, len(text), step):
        piece, _ = stream.feed(text[i : i + step])
        sent += piece
    return sent + stream.close(), stream


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"a": 1, "b": [true, null, -2.5e3], "c": {"d": "x\\"y"}}', None),
        ('{"a": 1,}', {"a": 1}),
        ('{"a": [1, 2, ], "b": 2 , }', {"a": [1, 2], "b": 2}),
        ('{"a": True, "b": None}', {"a": True, "b": None}),
        ("{'a': 'x'}", {"a": "x"}),
        ('{"a": 01}', None),
        ('{"a": "cut', {"a": "cut"}),
        ('{"a": tru', {"a": True}),
    ],
)
def test_args_stream_releases_only_valid_json(raw: str, expected: object) -> None:
    for step in (1, 2, 7):
        text, _ = _stream(raw, step)
        value = json.loads(text)
        assert isinstance(value, dict)
        if expected is not None:
            assert value == expected


def test_args_stream_stops_at_the_closing_brace() -> None:
    stream = ArgsStream()
    assert stream.feed('{"a": "}{\\"",') == ('{"a": "}{\\""', 13)
    assert stream.feed(' "b": [1]}} tail') == (', "b": [1]}', 10)
    assert stream.done and stream.close() == ""


def test_args_stream_repairs_from_the_whole_raw_text() -> None:
    stream = ArgsStream()
    sent, _ = stream.feed('{"a": True}')
    assert sent == '{"a": ' and stream.broken
    assert sent + stream.close('{"a": True}') == '{"a": true}'


def test_lenient_object() -> None:
    assert lenient_object('{"a": 1}}') == {"a": 1}
    assert lenient_object("{'a': true}") == {"a": True}
    assert lenient_object("[1]") is None
    assert lenient_object("nonsense") is None
