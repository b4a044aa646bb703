"""Events a streaming parser emits, and a helper that folds them into a message."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Content:
    """Answer text shown to the user."""

    text: str


@dataclass(frozen=True, slots=True)
class Reasoning:
    """Reasoning ("thinking") text."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    """A tool call begins; its arguments follow as ToolCallArgs with the same index."""

    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallArgs:
    """A piece of the JSON arguments text of the tool call ``index``."""

    index: int
    fragment: str


Event = Content | Reasoning | ToolCallStart | ToolCallArgs


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call: ``arguments`` is a JSON object text."""

    id: str
    name: str
    arguments: str


def collect(events: Iterable[Event]) -> tuple[str, str, list[ToolCall]]:
    """Fold events into (content, reasoning, tool calls in index order)."""
    content: list[str] = []
    reasoning: list[str] = []
    starts: dict[int, ToolCallStart] = {}
    args: dict[int, list[str]] = {}
    for event in events:
        if isinstance(event, Content):
            content.append(event.text)
        elif isinstance(event, Reasoning):
            reasoning.append(event.text)
        elif isinstance(event, ToolCallStart):
            starts[event.index] = event
            args.setdefault(event.index, [])
        else:
            args.setdefault(event.index, []).append(event.fragment)
    calls = [ToolCall(starts[i].id, starts[i].name, "".join(args[i])) for i in sorted(starts)]
    return "".join(content), "".join(reasoning), calls


def merge(events: Iterable[Event]) -> list[Event]:
    """Join neighbouring events of one kind (Content, Reasoning, one call's args); drop empties."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, Content | Reasoning | ToolCallArgs):
            text = event.fragment if isinstance(event, ToolCallArgs) else event.text
            if not text:
                continue
            last = out[-1] if out else None
            if isinstance(event, Content) and isinstance(last, Content):
                out[-1] = Content(last.text + event.text)
                continue
            if isinstance(event, Reasoning) and isinstance(last, Reasoning):
                out[-1] = Reasoning(last.text + event.text)
                continue
            if (
                isinstance(event, ToolCallArgs)
                and isinstance(last, ToolCallArgs)
                and last.index == event.index
            ):
                out[-1] = ToolCallArgs(event.index, last.fragment + event.fragment)
                continue
        out.append(event)
    return out
