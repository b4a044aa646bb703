"""Qwen3-Coder / Qwen3-Next tool calls: ``<function=NAME>`` with ``<parameter=KEY>`` values."""

from __future__ import annotations

import re
from typing import Any

from .base import BlockToolParser, Body, BodyResult, CallSink, ParamCall
from .events import Event
from .pattern import Lit, Pattern, Repeat, seq
from .prompts import example_prompt
from .xml_common import OpenValue, call_pattern, could_start, skip_junk, text_value

_CODER_PARAM_ENDS = ("</parameter>", "\n<parameter=", "\n</function>", "</tool_call>")


def _coder_value(raw: str) -> str:
    """The template writes a newline on each side of a value; take them off."""
    if raw.startswith("\n"):
        raw = raw[1:]
    if raw.endswith("\n"):
        raw = raw[:-1]
    return raw


class _CoderBody:
    """``<function=NAME>`` then ``<parameter=KEY>`` ``VALUE`` ``</parameter>`` ... ."""

    def __init__(self, calls: CallSink) -> None:
        self._calls = calls
        self._buffer = ""
        self._state = "head"
        self._call: ParamCall | None = None
        self._value: OpenValue | None = None

    def feed(self, text: str) -> BodyResult:
        self._buffer += text
        events: list[Event] = []
        while True:
            if self._value is not None:
                assert self._call is not None
                end, marker = self._value.find(self._buffer)
                if end < 0:
                    return BodyResult(events)
                value = _coder_value(self._buffer[:end])
                events.append(self._call.param(self._value.key, value))
                skip = len(marker) if marker == "</parameter>" else 0
                self._buffer = self._buffer[end + skip :]
                self._value = None
                continue
            s = self._buffer.lstrip()
            if self._state == "head":
                m = re.match(r"<function=([^>\n<]*)>", s)
                if m and m.group(1).strip():
                    self._call = ParamCall(self._calls, m.group(1).strip())
                    events.append(self._call.start)
                    self._buffer, self._state = s[m.end() :], "params"
                    continue
                partial = s.startswith("<function=") and re.fullmatch(r"<function=[^>\n<]*", s)
                if (could_start(s, "<function=") or partial) and len(s) < 300:
                    return BodyResult(events)
                if self._call is not None:
                    return BodyResult(events, self._buffer)
                return BodyResult(events, self._buffer, aborted=True)
            if self._state == "tail":
                if s.startswith("</tool_call>"):
                    return BodyResult(events, s[len("</tool_call>") :])
                if s.startswith("<function="):
                    self._buffer, self._state = s, "head"
                    continue
                if could_start(s, "</tool_call>", "<function="):
                    return BodyResult(events)
                return BodyResult(events, self._buffer)
            assert self._call is not None
            if s.startswith("<parameter="):
                gt = s.find(">")
                if gt < 0:
                    return BodyResult(events)
                self._value = OpenValue(s[11:gt].strip(), _CODER_PARAM_ENDS)
                self._buffer = s[gt + 1 :]
                continue
            if s.startswith("</function>"):
                events.append(self._call.close())
                self._buffer, self._state = s[len("</function>") :], "tail"
                continue
            if s.startswith("</tool_call>"):
                events.append(self._call.close())
                return BodyResult(events, s[len("</tool_call>") :])
            if could_start(s, "<parameter=", "</function>", "</tool_call>"):
                return BodyResult(events)
            self._buffer = skip_junk(s)

    def finish(self) -> BodyResult:
        if self._state == "tail":
            return BodyResult([], "")
        if self._state == "head" or self._call is None:
            return BodyResult([], self._buffer, aborted=self._call is None)
        events: list[Event] = []
        if self._value is not None:
            events.append(self._call.param(self._value.key, _coder_value(self._buffer)))
        events.append(self._call.close())
        return BodyResult(events, "")


class Qwen3CoderToolParser(BlockToolParser):
    """Qwen3-Coder / Qwen3-Next XML tool calls."""

    start_marker = "<tool_call>"

    def new_body(self) -> Body:
        """A body for one ``<tool_call>`` block."""
        return _CoderBody(self.calls)

    def format_call(self, name: str, arguments: dict[str, Any]) -> str:
        """``<tool_call>`` ``<function=NAME>`` ``<parameter=KEY>`` ... as the template writes it."""
        params = "".join(
            f"<parameter={k}>\n{text_value(v)}\n</parameter>\n" for k, v in arguments.items()
        )
        return f"<tool_call>\n<function={name}>\n{params}</function>\n</tool_call>"

    def calls_pattern(self, tools: list[dict[str, Any]], parallel: bool) -> Pattern:
        """One call (or, with ``parallel``, newline-separated calls) to one of ``tools``."""

        def render(key: str, value: Pattern) -> Pattern:
            return seq(Lit(f"<parameter={key}>\n"), value, Lit("\n</parameter>\n"))

        call = call_pattern(
            tools,
            lambda name: f"<tool_call>\n<function={name}>\n",
            render,
            "</function>\n</tool_call>",
        )
        return seq(call, Repeat(seq(Lit("\n"), call), min=0)) if parallel else call

    def system_prompt(self, tools: list[dict[str, Any]]) -> str:
        """Tool instructions with a Qwen3-Coder example call."""
        example = (
            "<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\n"
            "value_1\n</parameter>\n<parameter=example_parameter_2>\nThis is the value for "
            "the second parameter\nthat can span\nmultiple lines\n</parameter>\n</function>\n"
            "</tool_call>"
        )
        return example_prompt(tools, example)
