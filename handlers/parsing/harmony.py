"""gpt-oss "harmony" output: messages with channels; analysis is reasoning.

A message is ``<|start|>assistant<|channel|>CHANNEL [to=RECIPIENT] [<|constrain|>json]
<|message|>BODY`` ended by ``<|end|>``, ``<|call|>`` or ``<|return|>``. The
generation prompt ends with ``<|start|>assistant``, so the first message starts
at ``<|channel|>``. The recipient may also stand before ``<|channel|>``.
The engine must not strip these special tokens from the text it feeds.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .base import CallSink, function_specs, parameters_of
from .events import Event, Reasoning, ToolCallArgs, merge
from .jsonstream import ArgsStream, lenient_object
from .jsontext import dumps
from .pattern import Json, Lit, Pattern, alt, seq
from .text import ContentSink, find_first, partial_suffix

START, CHANNEL, MESSAGE = "<|start|>", "<|channel|>", "<|message|>"
END, CALL, RETURN, CONSTRAIN = "<|end|>", "<|call|>", "<|return|>", "<|constrain|>"
_OPENERS = (START, CHANNEL)
_BODY_ENDS = (END, CALL, RETURN, START, CHANNEL)
_MAX_HEADER = 2000


class HarmonyParser:
    """Streams harmony output: Reasoning (analysis), Content (final), tool calls.

    With ``tool_calls=False`` (the reasoning-only parser) a ``functions.*``
    message's body is released as Content. Messages to built-in tools
    (``to=python``, ``to=browser.search``) are Reasoning.
    """

    handles_reasoning = True

    def __init__(self, tools: list[dict[str, Any]] | None = None, *, tool_calls: bool = True):
        self.calls = CallSink(tools)
        self._tool_calls = tool_calls
        self._text = ContentSink()
        self._buffer = ""
        self._state = "text"
        self._kind = ""
        self._index = -1
        self._args = ArgsStream()

    def feed(self, text: str) -> list[Event]:
        """Take the next piece of output."""
        out: list[Event] = []
        self._buffer += text
        self._run(out)
        return merge(out)

    def finish(self) -> list[Event]:
        """End of output: close an open message, release held text."""
        out: list[Event] = []
        buffer, self._buffer = self._buffer, ""
        if self._state == "body":
            self._body(buffer, out)
            self._close(out)
        elif self._state == "header":
            if "to=functions." in buffer:
                self._text.text(buffer, out)
        else:
            self._text.text(buffer, out)
        self._state = "text"
        self._text.finish(out)
        return merge(out)

    def _run(self, out: list[Event]) -> None:
        while True:
            buffer = self._buffer
            if self._state == "text":
                i, _ = find_first(buffer, _OPENERS)
                if i < 0:
                    hold = partial_suffix(buffer, _OPENERS)
                    self._text.text(buffer[: len(buffer) - hold], out)
                    self._buffer = buffer[len(buffer) - hold :]
                    return
                if buffer[:i].strip():
                    self._text.text(buffer[:i], out)
                self._text.drop_ws()
                self._buffer, self._state = buffer[i:], "header"
            elif self._state == "header":
                i = buffer.find(MESSAGE)
                if i < 0:
                    if len(buffer) > _MAX_HEADER:
                        self._text.text(buffer, out)
                        self._buffer, self._state = "", "text"
                    return
                self._open(buffer[:i], out)
                self._buffer, self._state = buffer[i + len(MESSAGE) :], "body"
            else:
                i, marker = find_first(buffer, _BODY_ENDS)
                if i < 0:
                    hold = partial_suffix(buffer, _BODY_ENDS)
                    self._body(buffer[: len(buffer) - hold], out)
                    self._buffer = buffer[len(buffer) - hold :]
                    return
                self._body(buffer[:i], out)
                self._close(out)
                skip = len(marker) if marker in (END, CALL, RETURN) else 0
                self._buffer, self._state = buffer[i + skip :], "text"

    def _open(self, header: str, out: list[Event]) -> None:
        channel = re.search(r"<\|channel\|>\s*([^\s<]+)", header)
        to = re.search(r"to=([^\s<]+)", header)
        recipient = to.group(1) if to else ""
        if recipient.startswith("functions.") and self._tool_calls:
            start = self.calls.start(recipient[len("functions.") :])
            out.append(start)
            self._kind, self._index, self._args = "call", start.index, ArgsStream()
        elif recipient.startswith("functions."):
            self._kind = "content"
        elif recipient or (channel is not None and channel.group(1) == "analysis"):
            self._kind = "reasoning"
        else:
            self._kind = "content"

    def _body(self, text: str, out: list[Event]) -> None:
        if not text:
            return
        if self._kind == "call":
            piece, _ = self._args.feed(text)
            if piece:
                out.append(ToolCallArgs(self._index, piece))
        elif self._kind == "reasoning":
            out.append(Reasoning(text))
        else:
            self._text.text(text, out)

    def _close(self, out: list[Event]) -> None:
        if self._kind == "call":
            args = self._args
            out.append(ToolCallArgs(self._index, args.close()))
            lost = args.broken and not args.sent and lenient_object(args.raw) is None
            if lost and args.raw.strip():
                self._text.text(args.raw, out)
            self._text.call_done()
        self._kind = ""

    def format_call(self, name: str, arguments: dict[str, Any]) -> str:
        """One call as gpt-oss writes it, from ``<|start|>assistant`` to ``<|call|>``."""
        return (
            f"{START}assistant{CHANNEL}commentary to=functions.{name} {CONSTRAIN}json"
            f"{MESSAGE}{dumps(arguments)}{CALL}"
        )

    def calls_pattern(self, tools: list[dict[str, Any]], parallel: bool) -> Pattern:
        """One call to one of ``tools`` (harmony makes one call per turn: ``parallel`` is moot).

        It starts at ``<|channel|>``: the generation prompt ends with ``<|start|>assistant``.
        """
        options: list[Pattern] = [
            seq(
                Lit(f"{CHANNEL}commentary to=functions.{name} {CONSTRAIN}json{MESSAGE}"),
                Json(parameters_of(fn)),
                Lit(CALL),
            )
            for name, fn in function_specs(tools).items()
        ]
        if not options:
            raise ValueError("calls_pattern needs at least one tool")
        return alt(options)

    def system_prompt(self, tools: list[dict[str, Any]]) -> str:
        """The ``# Tools`` section of a harmony developer message (TypeScript signatures)."""
        lines = ["# Tools", "", "## functions", "", "namespace functions {", ""]
        for name, fn in function_specs(tools).items():
            if fn.get("description"):
                lines.append(f"// {fn['description']}")
            props = parameters_of(fn).get("properties") or {}
            if not props:
                lines.append(f"type {name} = () => any;")
            else:
                lines.append(f"type {name} = (_: {_ts_object(parameters_of(fn))}) => any;")
            lines.append("")
        lines.append("} // namespace functions")
        return "\n".join(lines)


def _ts_object(schema: dict[str, Any]) -> str:
    required = set(schema.get("required") or [])
    rows = ["{"]
    for key, prop in (schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        if prop.get("description"):
            rows.append(f"// {prop['description']}")
        mark = "" if key in required else "?"
        default = f" // default: {prop['default']}" if "default" in prop else ""
        rows.append(f"{key}{mark}: {_ts_type(prop)},{default}")
    rows.append("}")
    return "\n".join(rows)


def _ts_type(schema: dict[str, Any]) -> str:
    """A JSON schema as a TypeScript type, as harmony's renderer writes it."""
    if isinstance(schema.get("enum"), list):
        return " | ".join(json.dumps(v) for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return " | ".join(_ts_type(s) for s in schema[key] if isinstance(s, dict))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(_ts_type({**schema, "type": k}) for k in kind)
    if kind == "array":
        items = schema.get("items")
        return f"{_ts_type(items)}[]" if isinstance(items, dict) else "any[]"
    if kind == "object":
        return _ts_object(schema) if schema.get("properties") else "object"
    names = {
        "string": "string",
        "integer": "number",
        "number": "number",
        "boolean": "boolean",
        "null": "null",
    }
    return names.get(str(kind), "any")
