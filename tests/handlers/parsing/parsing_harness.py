"""Shared helpers for the parser tests: fixtures, feeding, invariants, a Pattern matcher."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handlers.parsing import (
    Alt,
    Content,
    Event,
    FreeText,
    Json,
    Lit,
    OutputParser,
    Pattern,
    Reasoning,
    Repeat,
    Seq,
    ToolCallArgs,
    ToolCallStart,
    collect,
    reasoning_parser,
    tool_parser,
)

FIXTURES = Path(__file__).parent / "fixtures"
TOOLS: list[dict[str, Any]] = json.loads((FIXTURES / "tools.json").read_text())
CALL_ID = re.compile(r"call_[0-9a-f]{24}")
MARKUP = (
    "<tool_call>",
    "</tool_call>",
    "<function=",
    "</function>",
    "<parameter",
    "</parameter>",
    "<arg_key>",
    "<arg_value>",
    "minimax:tool_call",
    "<invoke",
    "</invoke>",
    "<think>",
    "</think>",
    "<|",
    "|>",
)


@dataclass(frozen=True)
class Case:
    """One recorded output and what the parsers must make of it."""

    family: str
    id: str
    tool_parser: str | None
    reasoning_parser: str | None
    starts_in_reasoning: bool
    output: str
    content: str
    reasoning: str
    tool_calls: list[dict[str, Any]]
    clean: bool

    def parser(self) -> OutputParser:
        """A fresh parser chain for this case."""
        reasoning = (
            reasoning_parser(self.reasoning_parser, starts_in_reasoning=self.starts_in_reasoning)
            if self.reasoning_parser
            else None
        )
        tools = tool_parser(self.tool_parser, TOOLS) if self.tool_parser else None
        return OutputParser(reasoning, tools)


def load_cases() -> list[Case]:
    """Every fixture case, in file order."""
    cases = []
    for path in sorted(FIXTURES.glob("*.json")):
        if path.name == "tools.json":
            continue
        for raw in json.loads(path.read_text()):
            expected = raw["expected"]
            cases.append(
                Case(
                    family=path.stem,
                    id=raw["id"],
                    tool_parser=raw["tool_parser"],
                    reasoning_parser=raw["reasoning_parser"],
                    starts_in_reasoning=raw["starts_in_reasoning"],
                    output=raw["output"],
                    content=expected["content"],
                    reasoning=expected["reasoning"],
                    tool_calls=expected["tool_calls"],
                    clean=raw["clean"],
                )
            )
    return cases


def run(parser: Any, pieces: Iterable[str]) -> list[Event]:
    """Feed pieces, then finish; all events."""
    events: list[Event] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    events.extend(parser.finish())
    return events


def random_pieces(text: str, seed: int, low: int = 1, high: int = 3) -> list[str]:
    """``text`` cut into pieces of ``low``..``high`` characters."""
    rng = random.Random(seed)
    pieces, i = [], 0
    while i < len(text):
        n = rng.randint(low, high)
        pieces.append(text[i : i + n])
        i += n
    return pieces


def summary(events: list[Event]) -> tuple[str, str, list[tuple[str, str]]]:
    """(content, reasoning, [(name, raw arguments)]): what must not depend on splitting."""
    content, reasoning, calls = collect(events)
    return content, reasoning, [(c.name, c.arguments) for c in calls]


def check_invariants(events: list[Event]) -> None:
    """Starts before their arguments, indices 0..n-1 in order, ids well formed."""
    started: dict[int, str] = {}
    for event in events:
        if isinstance(event, ToolCallStart):
            assert event.index == len(started), events
            assert CALL_ID.fullmatch(event.id), event.id
            assert event.id not in started.values()
            started[event.index] = event.id
        elif isinstance(event, ToolCallArgs):
            assert event.index in started, events
        else:
            assert isinstance(event, Content | Reasoning)
    for _, _, calls in [collect(events)]:
        for call in calls:
            assert isinstance(json.loads(call.arguments), dict), call.arguments


# --- a small matcher for Pattern trees: the set of end positions from a start -------------


def _schema_ok(value: Any, schema: dict[str, Any]) -> bool:
    if "const" in schema and value != schema["const"]:
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    kind = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if isinstance(kind, str) and not checks[kind](value):
        return False
    if isinstance(value, dict):
        if any(key not in value for key in schema.get("required", [])):
            return False
        for key, sub in (schema.get("properties") or {}).items():
            if key in value and not _schema_ok(value[key], sub):
                return False
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return all(_schema_ok(v, schema["items"]) for v in value)
    return True


def ends(pattern: Pattern, text: str, start: int) -> set[int]:
    """Positions where a match of ``pattern`` starting at ``start`` can end."""
    if isinstance(pattern, Lit):
        return {start + len(pattern.text)} if text.startswith(pattern.text, start) else set()
    if isinstance(pattern, FreeText):
        out = {start}
        i = start
        while i < len(text) and text[i] not in pattern.exclude:
            i += 1
            out.add(i)
        return out
    if isinstance(pattern, Json):
        out = set()
        for end in range(start + 1, len(text) + 1):
            try:
                value = json.loads(text[start:end])
            except ValueError:
                continue
            if _schema_ok(value, pattern.schema) and not text[end - 1].isspace():
                out.add(end)
        return out
    if isinstance(pattern, Seq):
        positions = {start}
        for part in pattern.parts:
            positions = {e for p in positions for e in ends(part, text, p)}
        return positions
    if isinstance(pattern, Alt):
        return {e for option in pattern.options for e in ends(option, text, start)}
    assert isinstance(pattern, Repeat)
    out, frontier, count = set(), {start}, 0
    if pattern.min == 0:
        out.add(start)
    while frontier and (pattern.max is None or count < pattern.max):
        frontier = {e for p in frontier for e in ends(pattern.item, text, p)} - {start}
        count += 1
        if count >= pattern.min:
            out |= frontier
    return out


def matches(pattern: Pattern, text: str) -> bool:
    """Whether ``pattern`` matches all of ``text``."""
    return len(text) in ends(pattern, text, 0)
