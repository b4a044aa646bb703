"""Hypercorn's writes to plain TCP connections without two scheduler round trips.

Hypercorn's trio ``TCPServer.protocol_send`` takes a ``trio.Lock`` and calls
``SocketStream.send_all`` for every piece of a response, and each of the two
yields to trio's scheduler even when nothing waits. A streamed completion
writes one SSE event per token, so that is two extra scheduler passes per
token: 0.1 of the HTTP process's 0.5 ms of CPU per token here, CPU that
llama.cpp's threads lose on a small machine.

``install()`` wraps it: when no other write is in progress on a plain TCP
connection, the bytes are written at once with a non-blocking ``os.write``;
whatever the kernel does not take (a full buffer) and every error (a client
gone) go through Hypercorn's own path, which waits, or closes the connection,
as before. Writes stay in order: the fast path runs only while the lock is
free, and finishes without yielding.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import trio

log = logging.getLogger(__name__)

_ORIGINAL = "_bodega_original_protocol_send"


def install() -> bool:
    """Wrap ``TCPServer.protocol_send``; False (and Hypercorn untouched) if
    this Hypercorn does not look as expected."""
    from hypercorn.events import RawData
    from hypercorn.trio.tcp_server import TCPServer

    if hasattr(TCPServer, _ORIGINAL):
        return True
    original: Callable[[Any, Any], Awaitable[None]] | None = getattr(
        TCPServer, "protocol_send", None
    )
    if original is None:
        log.warning("hypercorn's TCPServer has no protocol_send: writes take the slow path")
        return False

    async def protocol_send(self: Any, event: Any) -> None:
        if type(event) is RawData and event.data:
            stream = self.stream
            lock: trio.Lock = self.send_lock
            if type(stream) is trio.SocketStream and not lock.locked():
                data = event.data
                try:
                    sent = os.write(stream.socket.fileno(), data)
                except OSError:  # a full buffer waits, an error closes: Hypercorn's path
                    sent = 0
                if sent == len(data):
                    return
                event = RawData(data=data[sent:])
        await original(self, event)

    setattr(TCPServer, _ORIGINAL, original)
    TCPServer.protocol_send = protocol_send  # type: ignore[method-assign]
    return True
