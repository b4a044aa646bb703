"""The handler's ``Delta`` frames -> OpenAI choice pieces.

``Assembled`` collects one choice's frames for a non-streaming answer; the
``*_out`` functions convert one frame for a stream chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bodega.openai.responses import (
    AssistantMessage,
    ChoiceDelta,
    ChoiceLogprobs,
    CompletionLogprobs,
    FunctionCallOut,
    TokenLogprobOut,
    ToolCallChunk,
    ToolCallOut,
    TopLogprobOut,
)
from ipc.messages import Delta, Finished, TokenLogprob


@dataclass
class Assembled:
    """One choice's whole output."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: dict[int, list[str]] = field(default_factory=dict)  # index -> [id, name, args]
    logprobs: list[TokenLogprob] = field(default_factory=list)

    def add(self, delta: Delta) -> None:
        """Take one frame."""
        self.text.append(delta.text)
        if delta.reasoning:
            self.reasoning.append(delta.reasoning)
        for part in delta.tool_calls:
            call = self.calls.setdefault(part.index, ["", "", ""])
            call[0] = call[0] or part.id
            call[1] = call[1] or part.name
            call[2] += part.arguments
        self.logprobs.extend(delta.logprobs)

    def message(self) -> AssistantMessage:
        """The assistant message of a chat completion."""
        calls = [
            ToolCallOut(id=cid, function=FunctionCallOut(name=name, arguments=args or "{}"))
            for cid, name, args in (self.calls[i] for i in sorted(self.calls))
        ]
        text = "".join(self.text)
        return AssistantMessage(
            role="assistant",
            content=text if text or not calls else None,
            reasoning_content="".join(self.reasoning) or None,
            tool_calls=calls or None,
        )


def finish_reason(finished: Finished) -> str:
    """``stop``, ``length`` or ``tool_calls`` (a cancelled request never reaches a client)."""
    return finished.reason if finished.reason in ("length", "tool_calls") else "stop"


def delta_out(delta: Delta) -> ChoiceDelta | None:
    """The ``delta`` of a chat chunk for one frame; None when it carries nothing."""
    calls = [
        ToolCallChunk(
            index=part.index,
            id=part.id or None,
            type="function" if part.id else None,
            function=FunctionCallOut(
                name=part.name or None,
                arguments=part.arguments if part.arguments or part.id else None,
            ),
        )
        for part in delta.tool_calls
    ]
    if not (delta.text or delta.reasoning or calls):
        return None
    return ChoiceDelta(
        content=delta.text or None,
        reasoning_content=delta.reasoning or None,
        tool_calls=calls or None,
    )


def chat_logprobs(entries: list[TokenLogprob]) -> ChoiceLogprobs:
    """``logprobs`` of a chat choice or chunk."""
    return ChoiceLogprobs(
        content=[
            TokenLogprobOut(
                token=e.token,
                logprob=e.logprob,
                bytes=e.bytes,
                top_logprobs=[
                    TopLogprobOut(token=t.token, logprob=t.logprob, bytes=t.bytes) for t in e.top
                ],
            )
            for e in entries
        ]
    )


def completion_logprobs(
    entries: list[TokenLogprob], top: int, offset: int = 0
) -> CompletionLogprobs:
    """``logprobs`` of a legacy completion; ``offset`` is where its text starts."""
    offsets = []
    for e in entries:
        offsets.append(offset)
        offset += len(e.token)
    return CompletionLogprobs(
        tokens=[e.token for e in entries],
        token_logprobs=[e.logprob for e in entries],
        top_logprobs=[{t.token: t.logprob for t in e.top[:top]} for e in entries] if top else None,
        text_offset=offsets,
    )
