"""The handler's frames -> a response's output items and its typed stream events.

``OutputBuilder`` keeps one item open at a time (reasoning, then a message,
then function calls), numbers every event (``sequence_number``) and, when
streaming, encodes each as an SSE event named by its ``type``. A non-streaming
response runs the same builder with ``stream=False``: nothing is encoded.
"""

from __future__ import annotations

import time
from typing import Any

from bodega.openai.responses import encoder
from bodega.services.text import summed
from ipc.messages import Delta, TokenLogprob, Usage

from .inputs import new_id, opaque_reasoning
from .types import (
    FunctionCallItem,
    FunctionCallOutputItem,
    IncompleteDetails,
    InputTokensDetails,
    Item,
    MessageItem,
    OutputText,
    OutputTokensDetails,
    ReasoningItem,
    ReasoningText,
    Response,
    ResponseError,
    ResponseUsage,
    TextLogprob,
    TopLogprob,
)


def sse(kind: str, payload: Any) -> bytes:
    """One named SSE event; the payload's JSON carries ``type`` too."""
    return b"event: " + kind.encode() + b"\ndata: " + encoder.encode(payload) + b"\n\n"


def text_logprobs(entries: list[TokenLogprob]) -> list[TextLogprob]:
    """Log-probabilities of generated tokens, as output text carries them."""
    return [
        TextLogprob(
            token=e.token,
            logprob=e.logprob,
            bytes=e.bytes,
            top_logprobs=[
                TopLogprob(token=t.token, logprob=t.logprob, bytes=t.bytes) for t in e.top
            ],
        )
        for e in entries
    ]


class OutputBuilder:
    """Builds ``response``'s output from frames; ``events`` collects what to send."""

    def __init__(
        self, response: Response, *, stream: bool, logprobs: bool, opaque_reasoning: bool
    ) -> None:
        self.response = response
        self.stream = stream
        self.want_logprobs = logprobs
        self.opaque = opaque_reasoning
        self.events: list[bytes] = []
        self.sequence = 0
        self.open: Item | None = None
        self.text: list[str] = []
        self.logprobs: list[TextLogprob] | None = None
        self.calls: dict[int, FunctionCallItem] = {}
        self.usages: list[Usage] = []
        self.reasoning_tokens = 0
        self._text_template: tuple[bytes, bytes] | None = None

    # --- events ----------------------------------------------------------

    def emit(self, kind: str, **fields: Any) -> None:
        """Queue event ``kind`` with ``fields`` and the next sequence number."""
        if self.stream:
            self.events.append(
                sse(kind, {"type": kind, **fields, "sequence_number": self.sequence})
            )
        self.sequence += 1

    def take(self) -> list[bytes]:
        """The events queued since the last call."""
        events, self.events = self.events, []
        return events

    def lifecycle(self, kind: str) -> None:
        """``response.created`` / ``in_progress`` / ``completed`` / ``failed`` / ``incomplete``."""
        self.emit(kind, response=self.response)

    # --- items -----------------------------------------------------------

    @property
    def index(self) -> int:
        """The output index of the open item (the last one)."""
        return len(self.response.output) - 1

    def _add(self, item: Item) -> None:
        self.close()
        self.response.output.append(item)
        self.open = item
        self.emit("response.output_item.added", output_index=self.index, item=item)

    def close(self) -> None:
        """Finish the open item, if any."""
        item, self.open = self.open, None
        if item is None:
            return
        index = self.index
        if isinstance(item, ReasoningItem):
            text = item.content[0].text if item.content else ""
            self.emit(
                "response.reasoning_text.done",
                item_id=item.id,
                output_index=index,
                content_index=0,
                text=text,
            )
            self.emit(
                "response.content_part.done",
                item_id=item.id,
                output_index=index,
                content_index=0,
                part={"type": "reasoning_text", "text": text},
            )
            if self.opaque:
                item.encrypted_content = opaque_reasoning(text)
        elif isinstance(item, MessageItem):
            text = "".join(self.text)
            output = OutputText(text=text, logprobs=self.logprobs)
            item.content = [output]
            self.emit(
                "response.output_text.done",
                item_id=item.id,
                output_index=index,
                content_index=0,
                text=text,
                logprobs=self.logprobs or [],
            )
            self.emit(
                "response.content_part.done",
                item_id=item.id,
                output_index=index,
                content_index=0,
                part=output,
            )
        elif isinstance(item, FunctionCallItem):
            self.emit(
                "response.function_call_arguments.done",
                item_id=item.id,
                output_index=index,
                arguments=item.arguments,
            )
        item.status = "completed"
        self.emit("response.output_item.done", output_index=index, item=item)

    def add_delta(self, delta: Delta) -> None:
        """Take one frame of a generation."""
        if delta.reasoning:
            self._reasoning(delta.reasoning)
            self.reasoning_tokens += delta.n_tokens if not delta.text else 0
        if delta.text:
            self._text(delta.text, delta.logprobs if self.want_logprobs else [])
        for part in delta.tool_calls:
            call = self.calls.get(part.index)
            if call is None:
                call = FunctionCallItem(
                    id=new_id("fc"),
                    call_id=part.id,
                    name=part.name,
                    arguments="",
                    status="in_progress",
                )
                self.calls[part.index] = call
                self._add(call)
            if part.arguments:
                call.arguments += part.arguments
                self.emit(
                    "response.function_call_arguments.delta",
                    item_id=call.id,
                    output_index=self.index,
                    delta=part.arguments,
                )

    def _reasoning(self, text: str) -> None:
        item = self.open
        if not isinstance(item, ReasoningItem):
            item = ReasoningItem(
                id=new_id("rs"), content=[ReasoningText(text="")], status="in_progress"
            )
            self._add(item)
            part = {"type": "reasoning_text", "text": ""}
            self.emit(
                "response.content_part.added",
                item_id=item.id,
                output_index=self.index,
                content_index=0,
                part=part,
            )
        assert item.content is not None
        item.content[0].text += text
        self.emit(
            "response.reasoning_text.delta",
            item_id=item.id,
            output_index=self.index,
            content_index=0,
            delta=text,
        )

    def _text(self, text: str, logprobs: list[TokenLogprob]) -> None:
        item = self.open
        if not isinstance(item, MessageItem):
            self.text = []
            self.logprobs = [] if self.want_logprobs else None
            self._text_template = None
            item = MessageItem(id=new_id("msg"), role="assistant", content=[], status="in_progress")
            self._add(item)
            part = OutputText(text="", logprobs=self.logprobs)
            self.emit(
                "response.content_part.added",
                item_id=item.id,
                output_index=self.index,
                content_index=0,
                part=part,
            )
        self.text.append(text)
        entries = text_logprobs(logprobs) if logprobs else []
        if self.logprobs is not None:
            self.logprobs.extend(entries)
        if not self.stream:
            self.sequence += 1
        elif entries:
            self.emit(
                "response.output_text.delta",
                item_id=item.id,
                output_index=self.index,
                content_index=0,
                delta=text,
                logprobs=entries,
            )
        else:
            # Most events are text alone: a template around the JSON string of
            # the text, rather than a dict encoded anew per token.
            if self._text_template is None:
                head = sse(
                    "response.output_text.delta",
                    {
                        "type": "response.output_text.delta",
                        "item_id": item.id,
                        "output_index": self.index,
                        "content_index": 0,
                        "logprobs": [],
                        "delta": "\0",
                    },
                )
                self._text_template = head[: head.rindex(b'"\\u0000"')], b',"sequence_number":'
            start, tail = self._text_template
            self.events.append(
                start + encoder.encode(text) + tail + str(self.sequence).encode() + b"}\n\n"
            )
            self.sequence += 1

    def add_tool_output(self, call_id: str, output: str) -> FunctionCallOutputItem:
        """The output of a built-in tool the server ran, as an output item."""
        item = FunctionCallOutputItem(
            id=new_id("fco"), call_id=call_id, output=output, status="completed"
        )
        self._add(item)
        self.close()
        return item

    def end_generation(self, usage: Usage) -> list[FunctionCallItem]:
        """Close the generation's items; the function calls it made."""
        self.close()
        self.usages.append(usage)
        calls = [self.calls[i] for i in sorted(self.calls)]
        self.calls = {}
        return calls

    # --- the end ----------------------------------------------------------------

    def finish(self, *, length: bool) -> None:
        """Mark the response completed (or incomplete at ``max_output_tokens``)."""
        self.close()
        response = self.response
        response.usage = self.usage()
        response.completed_at = int(time.time())
        if length:
            response.status = "incomplete"
            response.incomplete_details = IncompleteDetails(reason="max_output_tokens")
            self.lifecycle("response.incomplete")
        else:
            response.status = "completed"
            self.lifecycle("response.completed")

    def fail(self, code: str, message: str) -> None:
        """Mark the response failed."""
        self.close()
        self.response.status = "failed"
        self.response.error = ResponseError(code=code, message=message)
        self.response.usage = self.usage()
        self.lifecycle("response.failed")

    def usage(self) -> ResponseUsage:
        """Tokens over every generation of the response (each reads its whole prompt)."""
        total = summed(self.usages)
        return ResponseUsage(
            input_tokens=total.prompt_tokens,
            output_tokens=total.completion_tokens,
            total_tokens=total.prompt_tokens + total.completion_tokens,
            input_tokens_details=InputTokensDetails(cached_tokens=total.cached_tokens),
            output_tokens_details=OutputTokensDetails(reasoning_tokens=self.reasoning_tokens),
        )
