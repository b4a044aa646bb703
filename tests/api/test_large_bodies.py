"""``bodega.large_bodies``: Hypercorn reads up to 1 MiB at a time and glibc
keeps large freed blocks; bodies of every size and arrival pattern still
reach the app whole, in order, one request after another on a connection."""

from __future__ import annotations

import hashlib
import platform

import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve, tcp_server
from quart import request
from quart_trio import QuartTrio

from bodega import large_bodies


def app() -> QuartTrio:
    quart = QuartTrio(__name__)
    quart.config["MAX_CONTENT_LENGTH"] = 64 * 2**20

    @quart.post("/digest")
    async def digest() -> str:
        return hashlib.sha256(await request.get_data(cache=False)).hexdigest()

    return quart


async def post(stream: trio.SocketStream, body: bytes, piece: int, pause: float) -> str:
    """POST ``body`` written ``piece`` bytes at a time, ``pause`` s apart; the answer."""
    head = f"POST /digest HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    await stream.send_all(head.encode())
    for start in range(0, len(body), piece):
        await stream.send_all(body[start : start + piece])
        await trio.sleep(pause)
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += await stream.receive_some(65536)
    head_bytes, _, rest = answer.partition(b"\r\n\r\n")
    fields = dict(line.split(b":", 1) for line in head_bytes.split(b"\r\n")[1:] if b":" in line)
    length = int(fields[b"content-length"])
    while len(rest) < length:
        rest += await stream.receive_some(65536)
    return rest.decode()


def test_bodies_arrive_whole_with_large_reads() -> None:
    large_bodies.install()
    assert tcp_server.MAX_RECV == large_bodies.RECV_BYTES
    cases = [
        (b"{}", 2, 0.0),
        (bytes(range(256)) * 3200, 819_200, 0.0),  # 800 KB at once
        (bytes(range(251)) * 40_000, 1_000_003, 0.0),  # 10 MB, reads of ~1 MiB
        (b"x" * 300_000, 70_001, 0.01),  # trickling in
    ]

    async def main() -> list[str]:
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                lambda task_status: serve(  # type: ignore[arg-type]
                    app(), config, shutdown_trigger=stop.wait, task_status=task_status
                )
            )
            port = int(binds[0].rsplit(":", 1)[1])
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            digests = [await post(stream, *case) for case in cases]  # one connection
            await stream.aclose()
            stop.set()
        return digests

    digests = trio.run(main)
    assert digests == [hashlib.sha256(body).hexdigest() for body, _, _ in cases]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_malloc_thresholds_are_set_on_glibc() -> None:
    assert large_bodies.tune_malloc()
