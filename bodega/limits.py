"""The server's size limits, derived in one place, and the body drain.

Every size the HTTP process enforces comes from :func:`limits_for`: the
largest request body, the per-endpoint upload caps inside it, and the IPC
sizes they must fit. A message to a handler is at most a few times the body
it came from (JSON numbers can grow into 9-byte msgpack floats), so the body
limit is capped at ``message_bytes // MESSAGE_EXPANSION``: no request the HTTP
layer accepts can be too large for a channel. Messages over ``frame_bytes``
travel through shared memory (``ipc.channel``); one that still cannot travel
is refused with 413 (``app.py``), never a 500.

The drain: an answer that is ready before its request body has been read
in full (a 413 decided from the headers, an error raised before reading)
would otherwise leave the client writing into a connection nobody reads, and
a client that sends the whole body before reading the answer would never see
it. So the rest of such a body is read and discarded, up to ``drain_bytes``
and ``drain_seconds``, before the answer goes out; a body longer than that
gets its answer at once with ``Connection: close``. :class:`BodyMeter` (ASGI
middleware) counts the body as the app receives it; :func:`settle_body` (an
``after_request`` hook) waits for the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec
import trio
from quart import Response, request

from bodega.settings import Settings
from ipc.framing import DEFAULT_MAX_FRAME, MAX_SPILL

log = logging.getLogger(__name__)

MESSAGE_EXPANSION = 8  # a message is at most this many times its request body
DRAIN_SECONDS = 30.0
MIN_DRAIN_BYTES = 64 * 1024 * 1024
# After the app has answered, how long to keep reading a body nobody wants
# while the connection is being closed (Hypercorn stalls until it is read).
_AFTER_IDLE_SECONDS = 1.0

_SCOPE_KEY = "bodega.body"

# ASGI, loosely: Hypercorn's TypedDicts would need a cast at every key.
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """The sizes the server enforces, in bytes."""

    body_bytes: int  # the largest request body (MAX_CONTENT_LENGTH)
    audio_bytes: int  # an audio upload, inside the body
    rag_upload_bytes: int  # a RAG document upload, inside the body
    frame_bytes: int  # the largest message that travels inline in a frame
    message_bytes: int  # the largest message a channel carries at all (spilled)
    drain_bytes: int  # how much of an unread body is read before answering
    drain_seconds: float = DRAIN_SECONDS


def limits_for(settings: Settings) -> Limits:
    """The limits ``settings`` ask for, made consistent with what IPC carries."""
    wanted = settings.server.max_body_bytes
    body = min(wanted, MAX_SPILL // MESSAGE_EXPANSION)
    if body < wanted:
        log.warning(
            "server.max_body_bytes %d is more than a handler message can carry; using %d",
            wanted,
            body,
        )
    return Limits(
        body_bytes=body,
        audio_bytes=min(settings.server.max_audio_bytes, body),
        rag_upload_bytes=min(settings.rag.max_upload_bytes, body),
        frame_bytes=DEFAULT_MAX_FRAME,
        message_bytes=MAX_SPILL,
        drain_bytes=max(2 * body, MIN_DRAIN_BYTES),
    )


class _Body:
    """How much of a request's body has arrived."""

    __slots__ = ("bound", "ended", "received", "settled")

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.received = 0
        self.ended = False
        self.settled = trio.Event()  # ended, or more than ``bound`` arrived

    def end(self) -> None:
        self.ended = True
        self.settled.set()


class BodyMeter:
    """ASGI middleware: counts each request body as the app receives it.

    After the app returns with the body still coming (it answered early and
    the connection is closing), reads the rest for a moment: Hypercorn's
    reader waits until the app takes what it read, so it could otherwise not
    see the connection close, and the connection would never be let go.
    """

    def __init__(self, app: ASGIApp, drain_bytes: int) -> None:
        self.app = app
        self.drain_bytes = drain_bytes

    async def __call__(self, scope: Any, receive: Receive, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = _Body(self.drain_bytes)
        scope[_SCOPE_KEY] = body

        async def metered() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.received += len(message.get("body", b""))
                if not message.get("more_body", False):
                    body.end()
                elif body.received > body.bound:
                    body.settled.set()
            else:  # http.disconnect
                body.end()
            return message

        await self.app(scope, metered, send)
        if not body.ended:
            await _discard_rest(receive)


async def _discard_rest(receive: Receive) -> None:
    with trio.move_on_after(DRAIN_SECONDS):
        while True:
            with trio.move_on_after(_AFTER_IDLE_SECONDS) as idle:
                message = await receive()
            if idle.cancelled_caught:
                return  # nothing came for a while: the connection is gone
            if message["type"] != "http.request" or not message.get("more_body", False):
                return


async def settle_body(response: Response, limits: Limits) -> Response:
    """Before ``response`` leaves: read what is left of the request body, up
    to the drain bounds; if some is still unread, the connection closes."""
    body = request.scope.get(_SCOPE_KEY)
    if not isinstance(body, _Body) or body.ended:
        return response
    length = request.content_length
    if length is None or length <= body.bound:
        with trio.move_on_after(limits.drain_seconds):
            await body.settled.wait()
    if not body.ended:
        response.headers["Connection"] = "close"
    return response
