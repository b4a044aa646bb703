"""An engine's raw text stream -> ``Delta`` parts: answer, reasoning, tool calls.

Engines push each piece of decoded text (with its token count and
log-probabilities); the request's ``OutputParser`` (if any) splits it into
content, reasoning and tool-call parts, and whatever came out is emitted as
one delta. Tokens whose text the parser holds back (a possible start of
markup) are counted into the next delta, so token counts always add up.
"""

from __future__ import annotations

from handlers.engine_protocol import Emit
from handlers.parsing import OutputParser
from handlers.parsing.events import Content, Event, Reasoning, ToolCallArgs, ToolCallStart
from ipc.messages import TokenLogprob, ToolCallDelta


class OutputStream:
    """Parses and emits one request's output."""

    def __init__(self, emit: Emit, parser: OutputParser | None) -> None:
        self._emit = emit
        self._parser = parser
        self._tokens = 0
        self._logprobs: list[TokenLogprob] = []
        self.tool_calls = 0  # calls started so far
        self.tokens_seen = 0

    def add(self, text: str, n_tokens: int = 1, logprobs: list[TokenLogprob] | None = None) -> None:
        """Take the text of ``n_tokens`` new tokens."""
        self._tokens += n_tokens
        self.tokens_seen += n_tokens
        if logprobs:
            self._logprobs.extend(logprobs)
        if not text:
            return
        events: list[Event] = (
            self._parser.feed(text) if self._parser is not None else [Content(text)]
        )
        self._send(events)

    def close(self) -> None:
        """The output ended: flush what the parser held back."""
        events = self._parser.finish() if self._parser is not None else []
        self._send(events, force=bool(self._tokens))

    def _send(self, events: list[Event], force: bool = False) -> None:
        text: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCallDelta] = []
        for event in events:
            if isinstance(event, Content):
                text.append(event.text)
            elif isinstance(event, Reasoning):
                reasoning.append(event.text)
            elif isinstance(event, ToolCallStart):
                self.tool_calls += 1
                calls.append(ToolCallDelta(index=event.index, id=event.id, name=event.name))
            elif isinstance(event, ToolCallArgs):
                if calls and calls[-1].index == event.index and not calls[-1].arguments:
                    calls[-1].arguments = event.fragment
                else:
                    calls.append(ToolCallDelta(index=event.index, arguments=event.fragment))
        content, thought = "".join(text), "".join(reasoning)
        if not (content or thought or calls or force):
            return
        self._emit(
            content,
            self._tokens,
            reasoning=thought,
            tool_calls=calls or None,
            logprobs=self._logprobs or None,
        )
        self._tokens, self._logprobs = 0, []
