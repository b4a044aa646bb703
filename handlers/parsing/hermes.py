"""Hermes / Qwen3 tool calls: ``<tool_call>`` + ``{"name": ..., "arguments": {...}}``."""

from __future__ import annotations

import json
from typing import Any

from .base import BlockToolParser, Body, BodyResult, CallSink, function_specs, parameters_of
from .events import Event, ToolCallArgs
from .jsonstream import ArgsStream, lenient_object
from .jsontext import dumps
from .pattern import Json, Lit, Pattern, Repeat, alt, seq
from .prompts import hermes_system_prompt

_END = "</tool_call>"
_NEED, _OTHER = "need", "other"


def _head(buffer: str) -> tuple[str, str, int]:
    """Match ``{"name": "...", "arguments": {`` at the start of a call.

    Returns (status, name, index of the arguments' opening brace); status is
    "ok", "need" (could still match) or "other" (some other shape).
    """
    i = 0
    n = len(buffer)

    def ws(j: int) -> int:
        while j < n and buffer[j] in " \t\r\n":
            j += 1
        return j

    def lit(j: int, text: str) -> tuple[str, int]:
        chunk = buffer[j : j + len(text)]
        if not text.startswith(chunk):
            return _OTHER, j
        if len(chunk) < len(text):
            return _NEED, j
        return "ok", j + len(text)

    for part in ("{", '"name"', ":", '"'):
        status, i = lit(ws(i), part)
        if status != "ok":
            return status, "", i
    j = i
    while True:
        if j >= n:
            return _NEED, "", j
        if buffer[j] == "\\":
            j += 2
            continue
        if buffer[j] == '"':
            break
        j += 1
    try:
        name = json.loads(buffer[i - 1 : j + 1])
    except ValueError:
        return _OTHER, "", j
    i = j + 1
    for part in (",", '"arguments"', ":", "{"):
        status, i = lit(ws(i), part)
        if status != "ok":
            return status, "", i
    return "ok", name, i - 1


def parse_call_json(text: str) -> tuple[str, str] | None:
    """(name, arguments JSON) from a whole call object in any key order, or None.

    Lenient: Python-literal objects pass, ``parameters`` stands for
    ``arguments``, and arguments may be a JSON string or null.
    """
    obj = lenient_object(text)
    if obj is None or not isinstance(obj.get("name"), str):
        return None
    args = obj.get("arguments", obj.get("parameters"))
    if isinstance(args, str):
        args = lenient_object(args) if args.strip() else {}
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return None
    try:
        return obj["name"], dumps(args)
    except (TypeError, ValueError):
        return None


class _HermesBody:
    """One ``<tool_call>`` block.

    In the usual key order (name, then arguments) the call starts once the name
    is read and the arguments stream, checked (see jsonstream). Any other shape
    (keys in another order, arguments as a string) is parsed whole at
    ``</tool_call>``; a block that does not parse is released as plain text.
    """

    def __init__(self, calls: CallSink) -> None:
        self._calls = calls
        self._buffer = ""
        self._mode = "head"
        self._stream = ArgsStream()
        self._index = -1
        self._closed = False

    def feed(self, text: str) -> BodyResult:
        if self._mode == "args":
            return self._args(text, [])
        self._buffer += text
        if self._mode == "head":
            status, name, at = _head(self._buffer)
            if status == _NEED:
                return BodyResult()
            if status == _OTHER and not self._buffer.lstrip().startswith("{"):
                return BodyResult([], self._buffer, aborted=True)
            if status == _OTHER:
                self._mode = "whole"
            else:
                start = self._calls.start(name)
                self._index = start.index
                self._mode = "args"
                rest, self._buffer = self._buffer[at:], ""
                return self._args(rest, [start])
        if self._mode == "whole":
            return self._whole()
        return self._tail()

    def _args(self, text: str, events: list[Event]) -> BodyResult:
        piece, used = self._stream.feed(text)
        if piece:
            events.append(ToolCallArgs(self._index, piece))
        if self._stream.broken:
            raw = self._stream.raw
            end = raw.find(_END)
            if end < 0:
                return BodyResult(events)
            tail = self._stream.close(raw[:end])
            if tail:
                events.append(ToolCallArgs(self._index, tail))
            return BodyResult(events, raw[end + len(_END) :])
        if not self._stream.done:
            return BodyResult(events)
        self._mode = "tail"
        self._buffer = text[used:]
        result = self._tail()
        result.events[:0] = events
        return result

    def _tail(self) -> BodyResult:
        """After the arguments: the object's own ``}``, then ``</tool_call>``.

        Anything else ends the call there and is scanned again as text.
        """
        s = self._buffer.lstrip()
        if not self._closed and s.startswith("}"):
            self._closed = True
            s = s[1:].lstrip()
        self._buffer = s
        if s.startswith(_END):
            return BodyResult([], s[len(_END) :])
        if _END.startswith(s):
            return BodyResult()
        return BodyResult([], s)

    def _whole(self) -> BodyResult:
        end = self._buffer.find(_END)
        if end < 0:
            return BodyResult()
        parsed = parse_call_json(self._buffer[:end])
        if parsed is None:
            return BodyResult([], self._buffer, aborted=True)
        start = self._calls.start(parsed[0])
        events: list[Event] = [start, ToolCallArgs(start.index, parsed[1])]
        return BodyResult(events, self._buffer[end + len(_END) :])

    def finish(self) -> BodyResult:
        if self._mode == "args":
            tail = self._stream.close()
            return BodyResult([ToolCallArgs(self._index, tail)] if tail else [], "")
        if self._mode == "tail":
            return BodyResult([], "")
        if self._mode == "whole":
            parsed = parse_call_json(self._buffer)
            if parsed is not None:
                start = self._calls.start(parsed[0])
                return BodyResult([start, ToolCallArgs(start.index, parsed[1])], "")
        return BodyResult([], self._buffer, aborted=True)


class HermesToolParser(BlockToolParser):
    """Qwen3 / Hermes JSON tool calls in ``<tool_call>`` blocks."""

    start_marker = "<tool_call>"

    def new_body(self) -> Body:
        """A body for one ``<tool_call>`` block."""
        return _HermesBody(self.calls)

    def format_call(self, name: str, arguments: dict[str, Any]) -> str:
        """``<tool_call>``, newline, ``{"name": ..., "arguments": ...}``, newline, close."""
        body = dumps({"name": name, "arguments": arguments})
        return f"<tool_call>\n{body}\n</tool_call>"

    def calls_pattern(self, tools: list[dict[str, Any]], parallel: bool) -> Pattern:
        """One call (or, with ``parallel``, newline-separated calls) to one of ``tools``."""
        options: list[Pattern] = []
        for name, fn in function_specs(tools).items():
            schema = {
                "type": "object",
                "properties": {"name": {"const": name}, "arguments": parameters_of(fn)},
                "required": ["name", "arguments"],
            }
            options.append(Json(schema))
        if not options:
            raise ValueError("calls_pattern needs at least one tool")
        call = seq(Lit("<tool_call>\n"), alt(options), Lit("\n</tool_call>"))
        if not parallel:
            return call
        return seq(call, Repeat(seq(Lit("\n"), call), min=0))

    def system_prompt(self, tools: list[dict[str, Any]]) -> str:
        """Qwen3's tool instructions (the Hermes format)."""
        return hermes_system_prompt(tools)
