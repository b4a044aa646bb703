"""The Responses and Anthropic Messages APIs against chat completions on the same
model: TTFT and single-stream decode tokens/s through ``/v1/responses`` and
``/v1/messages`` vs ``/v1/chat/completions``, one server, requests rotating
between the three APIs (paired, order rotating)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec

from bodega.settings import embedded_lm_path

from .client import HttpChat
from .rawhttp import HttpError, SseConnection
from .registry import Options, register
from .report import Table, fmt, median, spread, verdict
from .server import BodegaServer
from .timing import Stream

TARGET = 0.98  # the API's decode tokens/s (or chat's TTFT / the API's) over chat's
MAX_TOKENS = 128
_decode = msgspec.json.Decoder()


def _responses_body(prompt: str) -> dict[str, Any]:
    return {"model": "lm", "input": prompt, "max_output_tokens": MAX_TOKENS,
            "temperature": 0, "stream": True, "store": False}  # fmt: skip


def _messages_body(prompt: str) -> dict[str, Any]:
    return {"model": "lm", "messages": [{"role": "user", "content": prompt}],
            "max_tokens": MAX_TOKENS, "temperature": 0, "stream": True}  # fmt: skip


def _responses_end(data: bytes, stream: Stream) -> None:
    event = _decode.decode(data)
    if event.get("type") in ("response.completed", "response.incomplete", "response.failed"):
        response = event["response"]
        stream.completion_tokens = int((response.get("usage") or {}).get("output_tokens", 0))
        stream.finish_reason = "length" if response["status"] == "incomplete" else "stop"
        if response.get("error"):
            stream.error = str(response["error"])


def _messages_end(data: bytes, stream: Stream) -> None:
    event = _decode.decode(data)
    if event.get("type") == "message_delta":
        stream.completion_tokens = int(event["usage"]["output_tokens"])
        reason = event["delta"].get("stop_reason")
        stream.finish_reason = "length" if reason == "max_tokens" else reason
    elif event.get("type") == "error":
        stream.error = str(event["error"])


class ApiStream:
    """Streams of one API over a kept-alive raw connection (see ``client.HttpChat``)."""

    def __init__(
        self,
        base_url: str,
        path: str,
        body: Callable[[str], dict[str, Any]],
        text_marker: bytes,
        end: Callable[[bytes, Stream], None],
    ) -> None:
        url = httpx.URL(base_url)
        self.conn = SseConnection(url.host, url.port or 80, timeout=300.0)
        self.path, self.body, self.marker, self.end = path, body, text_marker, end

    def stream(self, prompt: str) -> Stream:
        """One timed stream."""
        result = Stream()
        body = msgspec.json.encode(self.body(prompt))
        result.t_send = time.perf_counter()
        try:
            for data in self.conn.stream(self.path, body):
                now = time.perf_counter()
                if self.marker in data:
                    result.content_event(now)
                else:
                    self.end(data, result)
        except (HttpError, OSError) as exc:
            result.error = str(exc)
        result.t_done = time.perf_counter()
        return result

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


class ChatStream:
    """Chat completions through the bench's usual client."""

    def __init__(self, base_url: str) -> None:
        self.chat = HttpChat(base_url, "lm")

    def stream(self, prompt: str) -> Stream:
        """One timed stream."""
        return self.chat.stream(prompt, MAX_TOKENS)

    def close(self) -> None:
        """Close the connection."""
        self.chat.close()


def _sample(api: ChatStream | ApiStream, name: str, i: int) -> Stream:
    # A prompt of its own per API and round: the same length, and never found
    # whole in the prompt cache after another API's request.
    stream = api.stream(f"Write a long story about a fox, number {i} ({name[0]}).")
    problem = stream.check(MAX_TOKENS)
    if problem:
        raise RuntimeError(f"unusable sample from {type(api).__name__}: {problem}")
    return stream


@register("apis", "Responses and Anthropic Messages vs chat completions: TTFT and decode")
def run(options: Options) -> list[Table]:
    """One table: a row per API and measure."""
    log_dir = Path(options.log_dir)
    config = log_dir / "apis.yaml"
    config.write_text(
        f"models:\n  - model_path: {embedded_lm_path()}\n    model_id: lm\n    n_threads: 1\n"
    )
    names = ("chat", "responses", "messages")
    samples: dict[str, list[Stream]] = {name: [] for name in names}
    with BodegaServer(log_dir / "apis.log", ["--config", str(config)]) as server:
        url = server.base_url
        apis: dict[str, ChatStream | ApiStream] = {
            "chat": ChatStream(url),
            "responses": ApiStream(url, "/v1/responses", _responses_body,
                                   b'"response.output_text.delta"', _responses_end),
            "messages": ApiStream(url, "/v1/messages", _messages_body,
                                  b'"text_delta"', _messages_end),
        }  # fmt: skip
        for name, api in apis.items():
            _sample(api, name, -1)
        for i in range(options.reps(24, 4)):
            order = names[i % 3 :] + names[: i % 3]
            for name in order:
                samples[name].append(_sample(apis[name], name, i))
        for api in apis.values():
            api.close()
    table = Table(
        title=f"Single stream, {MAX_TOKENS} tokens (embedded GGUF, n_threads 1), one server: "
        f"each API vs chat completions, medians of {options.reps(24, 4)} rounds",
        columns=["API", "measure", "API", "chat", "ratio", "target", "", "ratio min-max"],
    )
    chat = samples["chat"]
    for name in ("responses", "messages"):
        mine = samples[name]
        decode = [a.decode_tps / c.decode_tps for a, c in zip(mine, chat, strict=True)]
        ttft = [c.ttft_ms / a.ttft_ms for a, c in zip(mine, chat, strict=True)]
        for measure, ratios, value, unit in (
            ("decode tok/s", decode, lambda s: s.decode_tps, ".1f"),
            ("TTFT ms", ttft, lambda s: s.ttft_ms, ".1f"),
        ):
            ratio = median(ratios)
            table.add(
                f"/v1/{name}",
                measure,
                fmt(median([value(s) for s in mine]), unit),
                fmt(median([value(s) for s in chat]), unit),
                fmt(ratio, ".3f"),
                f">= {TARGET:g}",
                verdict(ratio >= TARGET, ratio),
                spread(ratios, "{:.3f}"),
            )
    table.notes.append(
        "Ratios: the API's decode tokens/s over chat's, and chat's TTFT over the API's "
        "(above 1: the API is faster). Each round sends one request through each API, "
        "the order rotating; the Responses requests are not stored."
    )
    return [table]
