"""The HTTP side: stream a chat completion from a Bodega server over SSE and time it."""

from __future__ import annotations

import time
from typing import Any

import httpx
import msgspec

from .rawhttp import HttpError, SseConnection
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


def _is_plain_text(data: bytes) -> bool:
    """Whether an event is a mid-stream chunk with text and nothing else to
    record: most events are, and skipping their JSON decoding keeps this
    client's CPU (taken from the server it measures) small."""
    if b'": ' in data:  # Python's json.dumps spacing (mlx_lm.server)
        data = data.replace(b'": ', b'":')
    return (
        b'"finish_reason":null' in data
        and b'"content":"' in data
        and b'"content":""' not in data
        and b'"usage":{' not in data
    )


class HttpChat:
    """Chat streams to ``model`` on a server, over kept-alive connections.

    ``workers`` connections are opened so that concurrent streams never wait
    for one. They are raw sockets (``rawhttp.SseConnection``), not httpx: on
    two cores httpx's per-event CPU would be charged to the server it measures.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        workers: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self._headers = headers
        url = httpx.URL(base_url)
        self._address = (url.host, url.port or 80)
        self._connections: list[SseConnection | None] = [None] * workers

    def _connection(self, worker: int) -> SseConnection:
        conn = self._connections[worker]
        if conn is None:
            conn = self._connections[worker] = SseConnection(
                *self._address, timeout=300.0, headers=self._headers
            )
        return conn

    def warm(self) -> None:
        """Open every worker's connection before anything is timed."""
        for worker in range(len(self._connections)):
            self._connection(worker)

    def stream(
        self, prompt: str, max_tokens: int, worker: int = 0, timeout: float = 60.0
    ) -> Stream:
        """Send one streamed chat request and time its SSE events.

        Past ``timeout`` seconds the connection is closed (the server cancels
        the request) and the stream marked timed out.
        """
        conn = self._connection(worker)
        result = Stream()
        body = msgspec.json.encode(http_body(self.model, prompt, max_tokens))
        result.t_send = time.perf_counter()
        try:
            for data in conn.stream("/v1/chat/completions", body):
                now = time.perf_counter()
                if now - result.t_send > timeout:
                    result.error = f"timed out after {timeout:.0f} s"
                    self._drop(worker)
                    break
                if _is_plain_text(data):
                    result.content_event(now)
                elif data != b"[DONE]":  # read on to the body's end: the connection is reused
                    result.chat_chunk(_decode.decode(data), now)
        except (HttpError, OSError) as exc:
            result.error = str(exc)
            self._drop(worker)
        result.t_done = time.perf_counter()
        return result

    def _drop(self, worker: int) -> None:
        conn, self._connections[worker] = self._connections[worker], None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close every connection."""
        for worker in range(len(self._connections)):
            self._drop(worker)
