"""Messages too large for a frame travel through shared memory (spill frames)."""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections.abc import Iterator

import pytest
import trio

from ipc import messages as m
from ipc import shm
from ipc.channel import BlockingChannel, TrioChannel
from ipc.framing import (
    DEFAULT_MAX_FRAME,
    HEADER,
    SPILL_FLAG,
    Codec,
    FrameDecoder,
    FrameTooLarge,
    ProtocolError,
    SpillFailed,
    SpillNeeded,
    encode_frame,
    spill_frame,
)

MAX_FRAME = 1024
BIG_TEXT = "é" * 5000  # 10 000 bytes of UTF-8: spills under MAX_FRAME

pytestmark = pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")


def ours() -> set[str]:
    """This process's segments in /dev/shm."""
    return {n for n in os.listdir("/dev/shm") if n.startswith(f"{shm.PREFIX}{os.getpid()}-")}


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    before = ours()
    yield
    assert ours() == before, "a spilled segment was left behind"


def pair(
    server_type: object = m.HandlerMessage, handler_type: object = m.ServerMessage
) -> tuple[BlockingChannel[object], BlockingChannel[object]]:
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    return (
        BlockingChannel(a, server_type, max_frame=MAX_FRAME),
        BlockingChannel(b, handler_type, max_frame=MAX_FRAME),
    )


# --- framing -----------------------------------------------------------------


def test_encode_raises_spill_needed_and_hands_over_its_buffer() -> None:
    big = m.Delta(req_id=1, text=BIG_TEXT)
    with pytest.raises(SpillNeeded) as caught:
        encode_frame(big, MAX_FRAME, max_spill=1 << 20)
    # Later encodes do not write over the body the exception owns.
    encode_frame(m.Delta(req_id=2, text="x" * 500), MAX_FRAME)
    with caught.value.body as body:
        assert Codec(m.Delta).decode(body) == big
        assert len(body) == caught.value.size
    with pytest.raises(FrameTooLarge, match="largest message of 2000"):
        encode_frame(big, MAX_FRAME, max_spill=2000)


def test_decoder_loads_spill_frames_between_ordinary_ones() -> None:
    store = {"bd1-ab": b"\x01\x02\x03"}
    taken: list[tuple[str, int]] = []

    def load(name: str, size: int) -> bytes:
        taken.append((name, size))
        return store.pop(name)

    decoder = FrameDecoder(100, load_spill=load)
    small = encode_frame(m.Cancel(req_id=1))
    stream = small + spill_frame("bd1-ab", 3) + small
    out: list[bytes] = []
    for i in range(len(stream)):  # byte by byte: any split works
        out += decoder.feed(stream[i : i + 1])
    assert out == [small[HEADER.size :], b"\x01\x02\x03", small[HEADER.size :]]
    assert taken == [("bd1-ab", 3)]
    assert decoder.pending == 0


def test_decoder_without_loader_refuses_spill_frames() -> None:
    with pytest.raises(FrameTooLarge):
        FrameDecoder(100).feed(spill_frame("bd1-ab", 3))


@pytest.mark.parametrize(
    ("frame", "error", "match"),
    [
        (spill_frame("bd1-ab", 0), ProtocolError, "outside 1"),
        (spill_frame("bd1-ab", 2001), ProtocolError, "outside 1"),
        (HEADER.pack(SPILL_FLAG | 8) + bytes(8), ProtocolError, "names no segment"),
        (HEADER.pack(SPILL_FLAG | 9) + bytes(7) + b"\x05\xff", ProtocolError, "non-ASCII"),
        (HEADER.pack(SPILL_FLAG | 65) + bytes(65), FrameTooLarge, "maximum frame"),
        (HEADER.pack(SPILL_FLAG), ProtocolError, "names no segment"),
    ],
)
def test_garbage_spill_frames(frame: bytes, error: type[Exception], match: str) -> None:
    def load(name: str, size: int) -> bytes:
        raise AssertionError("a bad spill frame must not reach the loader")

    decoder = FrameDecoder(100, max_spill=2000, load_spill=load)
    good = encode_frame(m.Cancel(req_id=1))
    # Frames before the bad one come out; then the stream is broken for good.
    assert decoder.feed(good + frame + good) == [good[HEADER.size :]]
    with pytest.raises(error, match=match):
        decoder.feed(b"")
    with pytest.raises(error):
        decoder.feed(good)


@pytest.mark.parametrize(
    "name", ["bd1-missing0", "not-ours", "../etc/passwd", "psm_123", f"bd{os.getpid()}-00zz"]
)
def test_missing_or_foreign_segments_are_protocol_errors(name: str) -> None:
    decoder = FrameDecoder(100, load_spill=shm.take_spill)
    with pytest.raises(ProtocolError, match="spill frame unreadable"):
        decoder.feed(spill_frame(name, 10))


def test_segment_smaller_than_announced_is_a_protocol_error() -> None:
    name = shm.spill(b"abc")
    decoder = FrameDecoder(100, load_spill=shm.take_spill)
    with pytest.raises(ProtocolError, match="holds 3 bytes"):
        decoder.feed(spill_frame(name, 4))
    assert name not in ours()  # taken means unlinked, read or not


def test_spill_then_take_and_sweep() -> None:
    name = shm.spill(b"payload", owner_pid=os.getpid())
    assert name in ours()
    assert shm.take_spill(name, 7) == b"payload"
    assert name not in ours()
    shm.discard_spill(name)  # already gone: fine
    # A dead creator's spill is swept like any other segment.
    left = shm.spill(b"x", owner_pid=os.getpid())
    assert shm.sweep(is_alive=lambda pid: pid != os.getpid()) == [left]


def test_spill_write_error_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space"):
        shm.spill(b"x" * 100)


# --- blocking channels ---------------------------------------------------------


def test_blocking_spills_both_ways() -> None:
    server, handler = pair()
    with server, handler:
        request = m.Generate(req_id=1, prompt=BIG_TEXT, max_tokens=1)
        server.send(request)
        server.send(m.Cancel(req_id=1))
        assert handler.receive() == request
        assert handler.receive() == m.Cancel(req_id=1)
        reply = m.Delta(req_id=1, text=BIG_TEXT)
        handler.send(m.Delta(req_id=1, text="small"))
        handler.send(reply)
        assert server.receive() == m.Delta(req_id=1, text="small")
        assert server.receive() == reply


def test_blocking_default_limits_carry_a_message_larger_than_a_frame() -> None:
    a, b = socket.socketpair()
    text = "x" * (DEFAULT_MAX_FRAME + 1024)
    with (
        BlockingChannel(a, m.HandlerMessage) as server,
        BlockingChannel(b, m.ServerMessage) as handler,
    ):
        sender = threading.Thread(
            target=server.send, args=(m.Generate(req_id=7, prompt=text, max_tokens=1),)
        )
        sender.start()
        got = handler.receive()
        sender.join(10)
        assert isinstance(got, m.Generate) and got.prompt == text


def test_blocking_spill_failure_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(data: object, owner_pid: int | None = None) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    server, handler = pair()
    with server, handler:
        monkeypatch.setattr(shm, "spill", full)
        with pytest.raises(SpillFailed, match="No space left") as caught:
            handler.send(m.Delta(req_id=1, text=BIG_TEXT))
        assert isinstance(caught.value, FrameTooLarge)
        # Nothing went out: the channel is still in step.
        handler.send(m.Failed(req_id=1, kind="internal", message="reply too large"))
        assert server.receive() == m.Failed(req_id=1, kind="internal", message="reply too large")


def test_blocking_send_to_a_gone_peer_discards_its_spill() -> None:
    server, handler = pair()
    handler.close()
    with server, pytest.raises(OSError):
        server.send(m.Generate(req_id=1, prompt=BIG_TEXT, max_tokens=1))


# --- trio channels -------------------------------------------------------------


@pytest.mark.trio
async def test_trio_spills_both_ways_with_a_blocking_peer() -> None:
    a, b = socket.socketpair()
    server: TrioChannel[m.HandlerMessage] = TrioChannel(
        trio.SocketStream(trio.socket.from_stdlib_socket(a)), m.HandlerMessage, MAX_FRAME
    )
    handler: BlockingChannel[m.ServerMessage] = BlockingChannel(b, m.ServerMessage, MAX_FRAME)

    def echo() -> None:  # answers each Generate with its prompt as one Delta
        while True:
            try:
                request = handler.receive()
            except EOFError:
                return
            assert isinstance(request, m.Generate)
            handler.send(m.Delta(req_id=request.req_id, text=request.prompt or ""))

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    for req_id, prompt in enumerate(["short", BIG_TEXT, "short again", BIG_TEXT * 3]):
        await server.send(m.Generate(req_id=req_id, prompt=prompt, max_tokens=1))
        assert await server.receive() == m.Delta(req_id=req_id, text=prompt)
    await server.aclose()
    thread.join(10)
    handler.close()


@pytest.mark.trio
async def test_trio_spill_failure_and_broken_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    left, right = trio.testing.memory_stream_pair()
    server: TrioChannel[m.HandlerMessage] = TrioChannel(left, m.HandlerMessage, MAX_FRAME)
    handler: TrioChannel[m.ServerMessage] = TrioChannel(right, m.ServerMessage, MAX_FRAME)
    real_spill = shm.spill

    def full(data: object, owner_pid: int | None = None) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shm, "spill", full)
    with pytest.raises(SpillFailed, match="Generate of"):
        await server.send(m.Generate(req_id=1, prompt=BIG_TEXT, max_tokens=1))
    monkeypatch.setattr(shm, "spill", real_spill)
    await server.send(m.Cancel(req_id=1))
    assert await handler.receive() == m.Cancel(req_id=1)
    # A send that breaks after spilling unlinks its segment (fixture checks).
    await handler.aclose()
    with pytest.raises(trio.BrokenResourceError):
        await server.send(m.Generate(req_id=2, prompt=BIG_TEXT, max_tokens=1))
    await server.aclose()
