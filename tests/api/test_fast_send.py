"""Hypercorn with ``bodega.fast_send`` installed: every byte arrives, in order,
whether the kernel takes a write whole, in part, or the client is gone."""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response
from quart_trio import QuartTrio

from bodega import fast_send

BIG = bytes(range(256)) * 40_000  # 10 MB: far beyond a socket buffer
EVENTS = 2000


def app() -> QuartTrio:
    quart = QuartTrio(__name__)

    @quart.get("/big")
    async def big() -> Response:
        return Response(BIG, content_type="application/octet-stream")

    @quart.get("/events")
    async def events() -> Response:
        async def stream() -> AsyncIterator[bytes]:
            for i in range(EVENTS):
                yield f"data: {i}\n\n".encode()

        return Response(stream(), content_type="text/event-stream")

    return quart


async def start(nursery: trio.Nursery) -> tuple[int, trio.Event]:
    assert fast_send.install()
    assert fast_send.install()  # idempotent
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    stop = trio.Event()
    nursery.start_soon(lambda: serve(app(), config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    for _ in range(200):
        try:
            await (await trio.open_tcp_stream("127.0.0.1", port)).aclose()
            break
        except OSError:
            await trio.sleep(0.02)
    return port, stop


async def fetch(port: int, path: str, pause: float = 0.0) -> bytes:
    """The body of GET ``path``; reading starts after ``pause`` seconds."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    await trio.sleep(pause)  # the server fills the socket buffer meanwhile
    data = bytearray()
    with trio.fail_after(20):
        while not (body := complete_body(bytes(data))):
            chunk = await stream.receive_some(1 << 16)
            assert chunk, "the server closed the connection mid-response"
            data += chunk
    await stream.aclose()
    return body[0]


def complete_body(response: bytes) -> tuple[bytes] | None:
    """(the body,) once ``response`` holds all of it, else None."""
    head, found, body = response.partition(b"\r\n\r\n")
    if not found:
        return None
    headers = head.lower()
    if b"transfer-encoding: chunked" not in headers:
        length = int(headers.split(b"content-length: ")[1].split(b"\r\n")[0])
        return (body,) if len(body) >= length else None
    out = bytearray()
    while True:
        size_line, found, rest = body.partition(b"\r\n")
        if not found:
            return None
        size = int(size_line, 16)
        if size == 0:
            return (bytes(out),)
        if len(rest) < size + 2:
            return None
        out += rest[:size]
        body = rest[size + 2 :]


async def test_a_body_larger_than_the_socket_buffer_arrives_whole() -> None:
    async with trio.open_nursery() as nursery:
        port, stop = await start(nursery)
        assert (await fetch(port, "/big", pause=0.5)) == BIG
        assert (await fetch(port, "/big")) == BIG
        stop.set()


async def test_streamed_events_arrive_in_order() -> None:
    async with trio.open_nursery() as nursery:
        port, stop = await start(nursery)
        want = b"".join(f"data: {i}\n\n".encode() for i in range(EVENTS))
        assert (await fetch(port, "/events", pause=0.3)) == want
        stop.set()


async def test_a_client_gone_mid_body_leaves_the_server_serving() -> None:
    async with trio.open_nursery() as nursery:
        port, stop = await start(nursery)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        await stream.receive_some(1024)
        await stream.aclose()  # gone with most of the body unsent
        assert (await fetch(port, "/big")) == BIG
        stop.set()
