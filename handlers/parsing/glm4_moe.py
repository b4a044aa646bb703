"""GLM-4.5 / GLM-4.6 tool calls: ``<tool_call>NAME`` with ``<arg_key>``/``<arg_value>`` pairs."""

from __future__ import annotations

import re
from typing import Any

from .base import BlockToolParser, Body, BodyResult, CallSink, ParamCall
from .events import Event
from .pattern import Lit, Pattern, Repeat, seq
from .prompts import example_prompt
from .text import find_first, partial_suffix
from .xml_common import (
    NAME_CHARS,
    OpenValue,
    call_pattern,
    could_start,
    skip_junk,
    text_value,
)

_GLM_OPEN = re.compile(r"<arg_key>(.*?)</arg_key>\s*<arg_value>", re.S)


class _GlmBody:
    """``NAME`` then ``<arg_key>K</arg_key>`` ``<arg_value>V</arg_value>`` pairs."""

    def __init__(self, calls: CallSink) -> None:
        self._calls = calls
        self._buffer = ""
        self._call: ParamCall | None = None
        self._value: OpenValue | None = None

    def feed(self, text: str) -> BodyResult:
        self._buffer += text
        events: list[Event] = []
        if self._call is None:
            s = self._buffer.lstrip()
            end, _ = find_first(s, ("\n", "<arg_key>", "</tool_call>"))
            cut = len(s) - partial_suffix(s, ("<arg_key>", "</tool_call>"))
            name = (s[:cut] if end < 0 else s[:end]).strip()
            ok = NAME_CHARS.fullmatch(name) is not None and len(name) < 200
            if not ok or (end >= 0 and not name):
                return BodyResult([], self._buffer, aborted=True)
            if end < 0:
                return BodyResult()
            self._call = ParamCall(self._calls, name)
            events.append(self._call.start)
            self._buffer = s[end:]
        while True:
            if self._value is not None:
                end, marker = self._value.find(self._buffer)
                if end < 0:
                    return BodyResult(events)
                events.append(self._call.param(self._value.key, self._buffer[:end]))
                self._buffer, self._value = self._buffer[end + len(marker) :], None
                continue
            s = self._buffer.lstrip()
            m = _GLM_OPEN.match(s)
            if m:
                self._value = OpenValue(m.group(1).strip(), ("</arg_value>",))
                self._buffer = s[m.end() :]
                continue
            if s.startswith("</tool_call>"):
                events.append(self._call.close())
                return BodyResult(events, s[len("</tool_call>") :])
            if s.startswith("<arg_key>") or could_start(s, "<arg_key>", "</tool_call>"):
                return BodyResult(events)
            self._buffer = skip_junk(s)

    def finish(self) -> BodyResult:
        if self._call is None:
            return BodyResult([], self._buffer, aborted=True)
        events: list[Event] = []
        if self._value is not None:
            events.append(self._call.param(self._value.key, self._buffer))
        events.append(self._call.close())
        return BodyResult(events, "")


class Glm4MoeToolParser(BlockToolParser):
    """GLM-4.5 / GLM-4.6 tool calls: ``<tool_call>NAME`` and arg_key/arg_value pairs."""

    start_marker = "<tool_call>"

    def new_body(self) -> Body:
        """A body for one ``<tool_call>`` block."""
        return _GlmBody(self.calls)

    def format_call(self, name: str, arguments: dict[str, Any]) -> str:
        """The call as GLM's chat template writes it."""
        pairs = "".join(
            f"<arg_key>{k}</arg_key>\n<arg_value>{text_value(v)}</arg_value>\n"
            for k, v in arguments.items()
        )
        return f"<tool_call>{name}\n{pairs}</tool_call>"

    def calls_pattern(self, tools: list[dict[str, Any]], parallel: bool) -> Pattern:
        """One call (or, with ``parallel``, newline-separated calls) to one of ``tools``."""

        def render(key: str, value: Pattern) -> Pattern:
            return seq(Lit(f"<arg_key>{key}</arg_key>\n<arg_value>"), value, Lit("</arg_value>\n"))

        call = call_pattern(tools, lambda name: f"<tool_call>{name}\n", render, "</tool_call>")
        return seq(call, Repeat(seq(Lit("\n"), call), min=0)) if parallel else call

    def system_prompt(self, tools: list[dict[str, Any]]) -> str:
        """Tool instructions with a GLM example call."""
        example = (
            "<tool_call>{function-name}\n<arg_key>{arg-key-1}</arg_key>\n"
            "<arg_value>{arg-value-1}</arg_value>\n<arg_key>{arg-key-2}</arg_key>\n"
            "<arg_value>{arg-value-2}</arg_value>\n...\n</tool_call>"
        )
        return example_prompt(tools, example)
