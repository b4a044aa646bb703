"""Streaming tool-call and reasoning parsers for model output (standard library only).

``OutputParser(reasoning_parser(...), tool_parser(...))`` turns generated text,
fed in arbitrary pieces, into Content / Reasoning / ToolCallStart / ToolCallArgs
events; ``collect`` folds events into a message.

Wiring notes for an engine:
- Feed the detokenized text with the family's markup tokens kept
  (``<tool_call>``, ``<think>``, harmony's ``<|channel|>``... are often special
  tokens: do not skip special tokens for these models).
- ``starts_in_reasoning=prompt_opens_reasoning(rendered_prompt)``.
- ``tool_parser(name, request.tools)`` per request: values in XML-parameter
  formats are typed from those schemas (unknown tools/parameters stay strings).
- A call is committed (ToolCallStart) once its name is known; if the output
  ends inside it, ``finish`` closes its arguments into a valid JSON object. A
  block that never got as far as a name is released as Content.
"""

from __future__ import annotations

from .base import StreamParser, ToolCallParser
from .events import (
    Content,
    Event,
    Reasoning,
    ToolCall,
    ToolCallArgs,
    ToolCallStart,
    collect,
    merge,
)
from .pattern import Alt, FreeText, Json, Lit, Pattern, Repeat, Seq
from .reasoning import (
    REASONING_PARSERS,
    prompt_opens_reasoning,
    reasoning_parser,
    reasoning_pattern,
)
from .tool_calls import TOOL_PARSERS, tool_parser


class OutputParser:
    """A reasoning parser and a tool-call parser in a chain; either may be None.

    The reasoning parser sees the text first; its Content goes through the
    tool-call parser, its Reasoning passes through. A tool parser that handles
    reasoning itself (harmony) is used alone.
    """

    def __init__(self, reasoning: StreamParser | None, tools: ToolCallParser | None) -> None:
        if tools is not None and getattr(tools, "handles_reasoning", False):
            reasoning = None
        self.reasoning = reasoning
        self.tools = tools

    def feed(self, text: str) -> list[Event]:
        """Take the next piece of output."""
        if self.reasoning is None:
            events: list[Event] = [Content(text)]
        else:
            events = self.reasoning.feed(text)
        return self._route(events)

    def finish(self) -> list[Event]:
        """End of output: flush both parsers."""
        out = self._route(self.reasoning.finish()) if self.reasoning is not None else []
        if self.tools is not None:
            out.extend(self.tools.finish())
        return merge(out)

    def _route(self, events: list[Event]) -> list[Event]:
        if self.tools is None:
            return merge(events)
        out: list[Event] = []
        for event in events:
            if isinstance(event, Content):
                out.extend(self.tools.feed(event.text))
            else:
                out.append(event)
        return merge(out)


__all__ = [
    "REASONING_PARSERS",
    "TOOL_PARSERS",
    "Alt",
    "Content",
    "Event",
    "FreeText",
    "Json",
    "Lit",
    "OutputParser",
    "Pattern",
    "Reasoning",
    "Repeat",
    "Seq",
    "StreamParser",
    "ToolCall",
    "ToolCallArgs",
    "ToolCallParser",
    "ToolCallStart",
    "collect",
    "merge",
    "prompt_opens_reasoning",
    "reasoning_parser",
    "reasoning_pattern",
    "tool_parser",
]
