"""A minimal HTTP/1.1 keep-alive client on asyncio streams.

For benchmarks where the client must cost next to nothing: 64 concurrent
requests through httpx spend more CPU in the client than the server spends
answering them, on a machine whose cores the server needs.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
from collections.abc import Iterator
from typing import Any


class HttpError(RuntimeError):
    """The server answered something other than 200, or broke the exchange."""


class Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        """Connect to ``host:port``."""
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def post_json(self, path: str, body: bytes) -> bytes:
        """POST ``body`` (JSON) and return the response body; HttpError unless 200."""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self._writer.write(head + body)
        header = await self._reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            (
                int(v)
                for k, _, v in (x.partition(":") for x in lines[1:])
                if k.lower() == "content-length"
            ),
            None,
        )
        if length is None:
            raise HttpError("the response has no Content-Length")
        data = await self._reader.readexactly(length)
        if status != 200:
            raise HttpError(f"HTTP {status}: {data[:200]!r}")
        return data

    async def close(self) -> None:
        """Close the connection."""
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass


class SseConnection:
    """One blocking keep-alive connection reading chunked SSE responses.

    ``stream`` yields each event's ``data:`` payload as it arrives; a chunked
    response (as Hypercorn and llama-server send streams) is read to its end,
    so the connection is reusable afterwards; one that ends with the
    connection (no length, not chunked) is read until the server closes it.
    """

    def __init__(
        self, host: str, port: int, timeout: float, headers: dict[str, str] | None = None
    ) -> None:
        self._address = (host, port)
        self._timeout = timeout
        self._headers = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._sock = self._connect()
        self._buffer = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self._address, timeout=self._timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _reconnect_if_closed(self) -> None:
        """A new connection if the server closed this one (its keep-alive timeout)."""
        readable, _, _ = select.select([self._sock], [], [], 0)
        if readable and not self._sock.recv(1, socket.MSG_PEEK):
            self._sock.close()
            self._sock = self._connect()
            self._buffer = b""

    def _fill(self) -> None:
        data = self._sock.recv(65536)
        if not data:
            raise HttpError("the server closed the connection")
        self._buffer += data

    def _read_until(self, marker: bytes) -> bytes:
        while (end := self._buffer.find(marker)) < 0:
            self._fill()
        head, self._buffer = self._buffer[:end], self._buffer[end + len(marker) :]
        return head

    def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _chunks(self) -> Iterator[bytes]:
        while size := int(self._read_until(b"\r\n").split(b";")[0], 16):
            yield self._read_exactly(size)
            self._read_exactly(2)
        self._read_until(b"\r\n")  # no trailers: the blank line ending the body

    def _until_close(self) -> Iterator[bytes]:
        """The rest of a body that ends when the server closes the connection;
        a new connection is opened for the next request."""
        data, self._buffer = self._buffer, b""
        while True:
            if data:
                yield data
            data = self._sock.recv(65536)
            if not data:
                break
        self._sock.close()
        self._sock = self._connect()

    def stream(self, path: str, body: bytes) -> Iterator[bytes]:
        """POST ``body`` and yield the ``data:`` payload of every SSE event;
        HttpError unless the answer is a 200 stream."""
        self._reconnect_if_closed()
        self._sock.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                f"Accept: text/event-stream\r\n{self._headers}Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        lines = self._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
        }
        chunks: Iterator[bytes]
        if headers.get("transfer-encoding") == "chunked":
            chunks = self._chunks()
        elif status == 200 and "content-length" not in headers:
            chunks = self._until_close()  # an HTTP/1.0-style stream (mlx_lm.server)
        else:
            data = self._read_exactly(int(headers.get("content-length", "0")))
            raise HttpError(f"HTTP {status}: {data[:200]!r}")
        pending = b""
        for chunk in chunks:
            pending += chunk
            *events, pending = pending.split(b"\n\n")
            for event in events:
                for line in event.split(b"\n"):
                    if line.startswith(b"data: "):
                        yield line[6:]

    def close(self) -> None:
        """Close the connection."""
        self._sock.close()


def embeddings_body(model: str, text: str) -> bytes:
    """An ``/v1/embeddings`` request body for one text (floats, as most clients ask)."""
    return json.dumps({"model": model, "input": text, "encoding_format": "float"}).encode()


def vector_count(response: bytes) -> int:
    """How many embeddings a response carries."""
    data: Any = json.loads(response)
    return len(data["data"])
