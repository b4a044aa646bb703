"""Tool calls written as XML-ish parameters: Qwen3-Coder, GLM-4.5/4.6, MiniMax-M2.

Each parameter's value is plain text in the markup; the arguments JSON is built
from them, typed by the tool's parameter schema, one fragment per parameter
once its closing tag is seen.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .base import BlockToolParser, Body, BodyResult, CallSink, ParamCall, function_specs
from .base import parameters_of as _params
from .events import Event
from .jsontext import dumps, schema_types
from .pattern import FreeText, Json, Lit, Pattern, Repeat, alt, optional, seq
from .prompts import example_prompt
from .text import find_first, partial_suffix

_NAME_CHARS = re.compile(r"[\w.\-:/]*")


def _could_start(s: str, *markers: str) -> bool:
    """Whether ``s`` is a (possibly empty) proper start of one of ``markers``."""
    return any(m.startswith(s) and m != s for m in markers)


def _skip_junk(s: str) -> str:
    """Drop stray text inside a call, up to the next tag."""
    k = s.find("<", 1)
    return s[k:] if k >= 0 else ""


def _text_value(value: Any) -> str:
    """A parameter value as the markup writes it: strings raw, the rest as JSON."""
    return value if isinstance(value, str) else dumps(value)


def _value_pattern(prop: dict[str, Any]) -> Pattern:
    enum = prop.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        return alt([Lit(v) for v in enum])
    types = schema_types(prop)
    if not types or types == {"string"}:
        return FreeText("<")
    return Json(prop)


def _params_pattern(fn: dict[str, Any], render: Callable[[str, Pattern], Pattern]) -> Pattern:
    """Parameters in schema order: required ones always, optional ones optionally."""
    params = _params(fn)
    props = params.get("properties") or {}
    required = set(params.get("required") or [])
    parts: list[Pattern] = []
    for key, prop in props.items():
        part = render(key, _value_pattern(prop if isinstance(prop, dict) else {}))
        parts.append(part if key in required else optional(part))
    return seq(*parts) if parts else Lit("")


def _calls(tools: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    specs = list(function_specs(tools).items())
    if not specs:
        raise ValueError("calls_pattern needs at least one tool")
    return specs


# --- Qwen3-Coder -----------------------------------------------------------------

_CODER_PARAM_ENDS = ("</parameter>", "\n<parameter=", "\n</function>", "</tool_call>")


def _coder_value(raw: str) -> str:
    """The template writes a newline on each side of a value; take them off."""
    if raw.startswith("\n"):
        raw = raw[1:]
    if raw.endswith("\n"):
        raw = raw[:-1]
    return raw


class _OpenValue:
    """A parameter whose opening tag was read; its value runs to one of ``ends``.

    The search for the end resumes where it stopped, so long values stay linear.
    """

    def __init__(self, key: str, ends: tuple[str, ...]) -> None:
        self.key = key
        self._ends = ends
        self._longest = max(len(e) for e in ends)
        self._searched = 0

    def find(self, buffer: str) -> tuple[int, str]:
        """(position, marker) of the value's end in ``buffer``, or (-1, "")."""
        i, marker = find_first(buffer, self._ends, max(0, self._searched - self._longest))
        if i < 0:
            self._searched = len(buffer)
        return i, marker


class _CoderBody:
    """``<function=NAME>`` then ``<parameter=KEY>`` ``VALUE`` ``</parameter>`` ... ."""

    def __init__(self, calls: CallSink) -> None:
        self._calls = calls
        self._buffer = ""
        self._state = "head"
        self._call: ParamCall | None = None
        self._value: _OpenValue | None = None

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
                if (_could_start(s, "<function=") or partial) and len(s) < 300:
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
                if _could_start(s, "</tool_call>", "<function="):
                    return BodyResult(events)
                return BodyResult(events, self._buffer)
            assert self._call is not None
            if s.startswith("<parameter="):
                gt = s.find(">")
                if gt < 0:
                    return BodyResult(events)
                self._value = _OpenValue(s[11:gt].strip(), _CODER_PARAM_ENDS)
                self._buffer = s[gt + 1 :]
                continue
            if s.startswith("</function>"):
                events.append(self._call.close())
                self._buffer, self._state = s[len("</function>") :], "tail"
                continue
            if s.startswith("</tool_call>"):
                events.append(self._call.close())
                return BodyResult(events, s[len("</tool_call>") :])
            if _could_start(s, "<parameter=", "</function>", "</tool_call>"):
                return BodyResult(events)
            self._buffer = _skip_junk(s)

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
            f"<parameter={k}>\n{_text_value(v)}\n</parameter>\n" for k, v in arguments.items()
        )
        return f"<tool_call>\n<function={name}>\n{params}</function>\n</tool_call>"

    def calls_pattern(self, tools: list[dict[str, Any]], parallel: bool) -> Pattern:
        """One call (or, with ``parallel``, newline-separated calls) to one of ``tools``."""

        def render(key: str, value: Pattern) -> Pattern:
            return seq(Lit(f"<parameter={key}>\n"), value, Lit("\n</parameter>\n"))

        call = alt(
            [
                seq(
                    Lit(f"<tool_call>\n<function={name}>\n"),
                    _params_pattern(fn, render),
                    Lit("</function>\n</tool_call>"),
                )
                for name, fn in _calls(tools)
            ]
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


# --- GLM-4.5 / 4.6 -----------------------------------------------------------------

_GLM_OPEN = re.compile(r"<arg_key>(.*?)</arg_key>\s*<arg_value>", re.S)


class _GlmBody:
    """``NAME`` then ``<arg_key>K</arg_key>`` ``<arg_value>V</arg_value>`` pairs."""

    def __init__(self, calls: CallSink) -> None:
        self._calls = calls
        self._buffer = ""
        self._call: ParamCall | None = None
        self._value: _OpenValue | None = None

    def feed(self, text: str) -> BodyResult:
        self._buffer += text
        events: list[Event] = []
        if self._call is None:
            s = self._buffer.lstrip()
            end, _ = find_first(s, ("\n", "<arg_key>", "</tool_call>"))
            cut = len(s) - partial_suffix(s, ("<arg_key>", "</tool_call>"))
            name = (s[:cut] if end < 0 else s[:end]).strip()
            ok = _NAME_CHARS.fullmatch(name) is not None and len(name) < 200
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
                self._value = _OpenValue(m.group(1).strip(), ("</arg_value>",))
                self._buffer = s[m.end() :]
                continue
            if s.startswith("</tool_call>"):
                events.append(self._call.close())
                return BodyResult(events, s[len("</tool_call>") :])
            if s.startswith("<arg_key>") or _could_start(s, "<arg_key>", "</tool_call>"):
                return BodyResult(events)
            self._buffer = _skip_junk(s)

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
            f"<arg_key>{k}</arg_key>\n<arg_value>{_text_value(v)}</arg_value>\n"
            for k, v in arguments.items()
        )
        return f"<tool_call>{name}\n{pairs}</tool_call>"

    def calls_pattern(self, tools: list[dict[str, Any]], parallel: bool) -> Pattern:
        """One call (or, with ``parallel``, newline-separated calls) to one of ``tools``."""

        def render(key: str, value: Pattern) -> Pattern:
            return seq(Lit(f"<arg_key>{key}</arg_key>\n<arg_value>"), value, Lit("</arg_value>\n"))

        call = alt(
            [
                seq(Lit(f"<tool_call>{name}\n"), _params_pattern(fn, render), Lit("</tool_call>"))
                for name, fn in _calls(tools)
            ]
        )
        return seq(call, Repeat(seq(Lit("\n"), call), min=0)) if parallel else call

    def system_prompt(self, tools: list[dict[str, Any]]) -> str:
        """Tool instructions with a GLM example call."""
        example = (
            "<tool_call>{function-name}\n<arg_key>{arg-key-1}</arg_key>\n"
            "<arg_value>{arg-value-1}</arg_value>\n<arg_key>{arg-key-2}</arg_key>\n"
            "<arg_value>{arg-value-2}</arg_value>\n...\n</tool_call>"
        )
        return example_prompt(tools, example)


# --- MiniMax-M2 ---------------------------------------------------------------------

_MM_END = "</minimax:tool_call>"
_INVOKE = re.compile(r"""<invoke\s+name\s*=\s*["']?([^"'>]+?)["']?\s*>""")
_PARAM = re.compile(r"""<parameter\s+name\s*=\s*["']?([^"'>]+?)["']?\s*>""")


class _MiniMaxBody:
    """``<invoke name="NAME">`` blocks of ``<parameter name="KEY">VALUE</parameter>``."""

    def __init__(self, calls: CallSink) -> None:
        self._calls = calls
        self._buffer = ""
        self._call: ParamCall | None = None
        self._value: _OpenValue | None = None
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
                if opening or _could_start(s, "<invoke", _MM_END):
                    return BodyResult(events)
                if not self._made:
                    return BodyResult(events, self._buffer, aborted=True)
                self._buffer = _skip_junk(s)
                continue
            m = _PARAM.match(s)
            if m:
                self._value = _OpenValue(m.group(1).strip(), ("</parameter>",))
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
            if opening or _could_start(s, "<parameter", "</invoke>", _MM_END):
                return BodyResult(events)
            self._buffer = _skip_junk(s)

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
            f'<parameter name="{k}">{_text_value(v)}</parameter>\n' for k, v in arguments.items()
        )
        return f'<invoke name="{name}">\n{params}</invoke>\n'

    def calls_pattern(self, tools: list[dict[str, Any]], parallel: bool) -> Pattern:
        """One block of one invoke (or, with ``parallel``, one or more invokes)."""

        def render(key: str, value: Pattern) -> Pattern:
            return seq(Lit(f'<parameter name="{key}">'), value, Lit("</parameter>\n"))

        invoke = alt(
            [
                seq(
                    Lit(f'<invoke name="{name}">\n'),
                    _params_pattern(fn, render),
                    Lit("</invoke>\n"),
                )
                for name, fn in _calls(tools)
            ]
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
