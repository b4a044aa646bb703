"""MiniMax-M2 tool calls: ``<minimax:tool_call>`` blocks of ``<invoke>`` elements."""

from __future__ import annotations

import re
from typing import Any

from .base import BlockToolParser, Body, BodyResult, CallSink, ParamCall
from .events import Event
from .pattern import Lit, Pattern, Repeat, seq
from .prompts import example_prompt
from .xml_common import OpenValue, call_pattern, could_start, skip_junk, text_value

_MM_END = "</minimax:tool_call>"
_INVOKE = re.compile(r"""<invoke\s+name\s*=\s*["']?([^"'>]+?)["']?\s*>""")
_PARAM = re.compile(r"""<parameter\s+name\s*=\s*["']?([^"'>]+?)["']?\s*>""")


class _MiniMaxBody:
    """``<invoke name="NAME">`` blocks of ``<parameter name="KEY">VALUE</parameter>``."""

    def __init__(self, calls: CallSink) -> None:
        self._calls = calls
        self._buffer = ""
        self._call: ParamCall | None = None
        self._value: OpenValue | None = None
        self._made = 0

    def feed(self, text: str) -> BodyResult:
        self._buffer += text
        events: list[Event] = []
        while True:
            if self._value is not None:
                assert self._call is not None
                end, marker = self._value.find(self._buffer)
                if end < 0:
                    return BodyResult(events)
                events.append(self._call.param(self._value.key, self._buffer[:end]))
                self._buffer, self._value = self._buffer[end + len(marker) :], None
                continue
            s = self._buffer.lstrip()
            if self._call is None:
                m = _INVOKE.match(s)
                if m:
                    self._call = ParamCall(self._calls, m.group(1).strip())
                    self._made += 1
                    events.append(self._call.start)
                    self._buffer = s[m.end() :]
                    continue
                if s.startswith(_MM_END):
                    return BodyResult(events, s[len(_MM_END) :])
                opening = s.startswith("<invoke") and ">" not in s and len(s) < 300
                if opening or could_start(s, "<invoke", _MM_END):
                    return BodyResult(events)
                if not self._made:
                    return BodyResult(events, self._buffer, aborted=True)
                self._buffer = skip_junk(s)
                continue
            m = _PARAM.match(s)
            if m:
                self._value = OpenValue(m.group(1).strip(), ("</parameter>",))
                self._buffer = s[m.end() :]
                continue
            if s.startswith("</invoke>"):
                events.append(self._call.close())
                self._call, self._buffer = None, s[len("</invoke>") :]
                continue
            if s.startswith(_MM_END):
                events.append(self._call.close())
                return BodyResult(events, s[len(_MM_END) :])
            opening = s.startswith("<parameter") and ">" not in s and len(s) < 300
            if opening or could_start(s, "<parameter", "</invoke>", _MM_END):
                return BodyResult(events)
            self._buffer = skip_junk(s)

    def finish(self) -> BodyResult:
        if self._call is None:
            if self._made:
                return BodyResult([], "")
            return BodyResult([], self._buffer, aborted=True)
        events: list[Event] = []
        if self._value is not None:
            events.append(self._call.param(self._value.key, self._buffer))
        events.append(self._call.close())
        return BodyResult(events, "")


class MiniMaxM2ToolParser(BlockToolParser):
    """MiniMax-M2 tool calls: ``<minimax:tool_call>`` blocks of ``<invoke>`` elements."""

    start_marker = "<minimax:tool_call>"

    def new_body(self) -> Body:
        """A body for one ``<minimax:tool_call>`` block."""
        return _MiniMaxBody(self.calls)

    def format_call(self, name: str, arguments: dict[str, Any]) -> str:
        """One call in its own block, as MiniMax-M2's template writes it."""
        return f"<minimax:tool_call>\n{self._invoke(name, arguments)}</minimax:tool_call>"

    def format_calls(self, calls: list[tuple[str, dict[str, Any]]]) -> str:
        """Several calls in one block (how the template writes parallel calls)."""
        invokes = "".join(self._invoke(name, args) for name, args in calls)
        return f"<minimax:tool_call>\n{invokes}</minimax:tool_call>"

    @staticmethod
    def _invoke(name: str, arguments: dict[str, Any]) -> str:
        params = "".join(
            f'<parameter name="{k}">{text_value(v)}</parameter>\n' for k, v in arguments.items()
        )
        return f'<invoke name="{name}">\n{params}</invoke>\n'

    def calls_pattern(self, tools: list[dict[str, Any]], parallel: bool) -> Pattern:
        """One block of one invoke (or, with ``parallel``, one or more invokes)."""

        def render(key: str, value: Pattern) -> Pattern:
            return seq(Lit(f'<parameter name="{key}">'), value, Lit("</parameter>\n"))

        invoke = call_pattern(
            tools, lambda name: f'<invoke name="{name}">\n', render, "</invoke>\n"
        )
        body = seq(invoke, Repeat(invoke, min=0)) if parallel else invoke
        return seq(Lit("<minimax:tool_call>\n"), body, Lit(_MM_END))

    def system_prompt(self, tools: list[dict[str, Any]]) -> str:
        """Tool instructions with a MiniMax-M2 example call."""
        example = (
            '<minimax:tool_call>\n<invoke name="tool-name-1">\n'
            '<parameter name="param-key-1">param-value-1</parameter>\n'
            '<parameter name="param-key-2">param-value-2</parameter>\n...\n</invoke>\n'
            "</minimax:tool_call>"
        )
        return example_prompt(tools, example)
