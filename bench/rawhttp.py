"""A minimal HTTP/1.1 keep-alive client on asyncio streams.

For benchmarks where the client must cost next to nothing: 64 concurrent
requests through httpx spend more CPU in the client than the server spends
answering them, on a machine whose cores the server needs.
"""

from __future__ import annotations

import asyncio
import json
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


def embeddings_body(model: str, text: str) -> bytes:
    """An ``/v1/embeddings`` request body for one text (floats, as most clients ask)."""
    return json.dumps({"model": model, "input": text, "encoding_format": "float"}).encode()


def vector_count(response: bytes) -> int:
    """How many embeddings a response carries."""
    data: Any = json.loads(response)
    return len(data["data"])
