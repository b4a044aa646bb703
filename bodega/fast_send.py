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

It also makes the rest of Hypercorn's connection bookkeeping (``Closed``:
half-close and close the socket; ``Updated``: start or stop the keep-alive
timer) run to its end. That bookkeeping runs in the request's own task when
the answer's last byte is sent, and quart-trio cancels that task as soon as
the request's body reader sees the stream close: the close of a
``Connection: close`` answer (a 413) was cancelled half way, leaving the
connection open and unread, and keep-alive connections lost their idle
timer. It is shielded, with its own deadline.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import trio

log = logging.getLogger(__name__)

_ORIGINAL = "_bodega_original_protocol_send"
BOOKKEEPING_SECONDS = 5.0  # the most a shielded Closed or Updated may take


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
        elif type(event) is not RawData:  # Closed, Updated: never cut half way
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + BOOKKEEPING_SECONDS
                await original(self, event)
            return
        await original(self, event)

    setattr(TCPServer, _ORIGINAL, original)
    TCPServer.protocol_send = protocol_send  # type: ignore[method-assign]
    return True
