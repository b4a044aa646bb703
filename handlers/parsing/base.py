"""The parser interfaces and the shared machinery of block-marked tool-call formats."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .events import Event, ToolCallArgs, ToolCallStart, merge
from .jsontext import new_call_id, typed_value
from .pattern import Pattern
from .text import ContentSink, partial_suffix


@runtime_checkable
class StreamParser(Protocol):
    """Model output in, events out, across arbitrary splits of the text."""

    def feed(self, text: str) -> list[Event]:
        """Take the next piece of output; return the events it completes."""
        ...

    def finish(self) -> list[Event]:
        """End of output: flush what is held back; never lose text."""
        ...


@runtime_checkable
class ToolCallParser(StreamParser, Protocol):
    """A StreamParser for one tool-call family, plus its prompt and grammar helpers."""

    def format_call(self, name: str, arguments: dict[str, Any]) -> str:
        """One assistant tool call in this family's markup."""
        ...

    def calls_pattern(self, tools: list[dict[str, Any]], parallel: bool) -> Pattern:
        """Grammar of one call (or, with ``parallel``, one or more) to one of ``tools``."""
        ...

    def system_prompt(self, tools: list[dict[str, Any]]) -> str:
        """Tool instructions for a system message, for templates that cannot render tools."""
        ...


def function_specs(tools: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Map tool name -> its ``function`` object (OpenAI ``tools`` list, or bare functions)."""
    out: dict[str, dict[str, Any]] = {}
    for tool in tools or []:
        if not isinstance(tool, dict):
            continue
        fn = tool.get("function", tool)
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            out[fn["name"]] = fn
    return out


def parameters_of(fn: dict[str, Any]) -> dict[str, Any]:
    """A function's parameters schema (an empty object schema when absent)."""
    params = fn.get("parameters")
    return params if isinstance(params, dict) else {"type": "object", "properties": {}}


@dataclass(slots=True)
class BodyResult:
    """What a call body made of the text fed to it.

    ``rest`` is None while the body goes on; otherwise the body ended and
    ``rest`` is the text after it. ``aborted``: it was not a call after all, and
    ``rest`` is everything after the start marker, to scan again as plain text.
    """

    events: list[Event] = field(default_factory=list)
    rest: str | None = None
    aborted: bool = False


class Body(Protocol):
    """The text of one marked block after its start marker."""

    def feed(self, text: str) -> BodyResult:
        """Take more of the block's text."""
        ...

    def finish(self) -> BodyResult:
        """Output ended inside the block."""
        ...


class CallSink:
    """Allocates call indices and types parameter values; shared by a parser's bodies."""

    def __init__(self, tools: list[dict[str, Any]] | None) -> None:
        self.functions = function_specs(tools)
        self._next = 0

    def start(self, name: str) -> ToolCallStart:
        """A ToolCallStart for the next index."""
        event = ToolCallStart(self._next, new_call_id(), name)
        self._next += 1
        return event

    def param_schema(self, function: str, key: str) -> dict[str, Any] | None:
        """The schema of one parameter, if the tool and parameter are known."""
        fn = self.functions.get(function)
        if fn is None:
            return None
        props = parameters_of(fn).get("properties")
        if isinstance(props, dict) and isinstance(props.get(key), dict):
            return dict(props[key])
        return None


class ParamCall:
    """Builds one call's JSON arguments from key/value text pairs, fragment by fragment."""

    def __init__(self, sink: CallSink, name: str) -> None:
        self.start = sink.start(name)
        self._sink = sink
        self._count = 0

    def param(self, key: str, raw: str) -> ToolCallArgs:
        """The fragment for one complete parameter."""
        value = typed_value(raw, self._sink.param_schema(self.start.name, key))
        lead = "{" if self._count == 0 else ", "
        self._count += 1
        key_json = json.dumps(key, ensure_ascii=False)
        return ToolCallArgs(self.start.index, f"{lead}{key_json}: {value}")

    def close(self) -> ToolCallArgs:
        """The fragment that closes the arguments object."""
        return ToolCallArgs(self.start.index, "}" if self._count else "{}")


class BlockToolParser:
    """Tool calls inside marked blocks (``<tool_call>...``); plain text around them.

    Subclasses set ``start_marker`` and make a Body for each block.
    """

    start_marker = "<tool_call>"

    def __init__(self, tools: list[dict[str, Any]] | None = None) -> None:
        self.calls = CallSink(tools)
        self._text = ContentSink()
        self._held = ""
        self._body: Body | None = None

    def new_body(self) -> Body:
        """A body for a block that just started."""
        raise NotImplementedError

    def feed(self, text: str) -> list[Event]:
        """Take the next piece of output."""
        out: list[Event] = []
        self._run(text, out)
        return merge(out)

    def finish(self) -> list[Event]:
        """End of output: close or release an open block, flush held text."""
        out: list[Event] = []
        while self._body is not None:
            body, self._body = self._body, None
            result = body.finish()
            out.extend(result.events)
            self._run(self._after(result, out), out)
        self._text.text(self._held, out)
        self._held = ""
        self._text.finish(out)
        return merge(out)

    def _after(self, result: BodyResult, out: list[Event]) -> str:
        """A block ended: settle the text around it; return the text after it."""
        if result.aborted:
            self._text.text(self.start_marker, out)
        else:
            self._text.call_done()
        return result.rest or ""

    def _run(self, text: str, out: list[Event]) -> None:
        while True:
            if self._body is not None:
                result = self._body.feed(text)
                out.extend(result.events)
                if result.rest is None:
                    return
                self._body = None
                text = self._after(result, out)
                continue
            buffer = self._held + text
            self._held = ""
            i = buffer.find(self.start_marker)
            if i < 0:
                hold = partial_suffix(buffer, (self.start_marker,))
                self._text.text(buffer[: len(buffer) - hold], out)
                self._held = buffer[len(buffer) - hold :]
                return
            self._text.text(buffer[:i], out)
            self._body = self.new_body()
            text = buffer[i + len(self.start_marker) :]
