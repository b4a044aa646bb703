"""The HTTP side: stream a chat completion from a Bodega server over SSE and time it."""

from __future__ import annotations

import time
from typing import Any

import httpx
import msgspec

from .timing import Stream

_decode = msgspec.json.Decoder()


def http_body(model: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    """The OpenAI chat request both sides answer (see ``engines.engine_body``)."""
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0,
        "max_tokens": max_tokens,
    }


class HttpChat:
    """Chat streams to ``model`` on a server, over kept-alive connections.

    ``workers`` clients are opened so that concurrent streams never wait for a
    connection; ``warm`` opens their connections before anything is timed.
    """

    def __init__(self, base_url: str, model: str, workers: int = 1) -> None:
        self.base_url = base_url
        self.model = model
        self._clients = [
            httpx.Client(base_url=base_url, timeout=httpx.Timeout(300.0, connect=10.0))
            for _ in range(workers)
        ]

    def warm(self) -> None:
        """Open every client's connection with a cheap request."""
        for client in self._clients:
            client.get("/health").raise_for_status()

    def stream(
        self, prompt: str, max_tokens: int, worker: int = 0, timeout: float = 60.0
    ) -> Stream:
        """Send one streamed chat request and time its SSE events.

        Past ``timeout`` seconds the stream is closed (the server cancels the
        request) and marked timed out.
        """
        client = self._clients[worker]
        result = Stream()
        body = msgspec.json.encode(http_body(self.model, prompt, max_tokens))
        headers = {"content-type": "application/json"}
        result.t_send = time.perf_counter()
        with client.stream("POST", "/v1/chat/completions", content=body, headers=headers) as reply:
            if reply.status_code != 200:
                reply.read()
                result.error = f"HTTP {reply.status_code}: {reply.text[:200]}"
                result.t_done = time.perf_counter()
                return result
            for line in reply.iter_lines():
                if not line.startswith("data: "):
                    continue
                now = time.perf_counter()
                if now - result.t_send > timeout:
                    result.error = f"timed out after {timeout:.0f} s"
                    break
                data = line[6:]
                if data == "[DONE]":
                    break
                result.chat_chunk(_decode.decode(data), now)
        result.t_done = time.perf_counter()
        return result

    def close(self) -> None:
        """Close every connection."""
        for client in self._clients:
            client.close()
