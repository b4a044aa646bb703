"""TrioChannel and BlockingChannel over memory streams and real sockets."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from ipc import messages as m
from ipc.channel import BlockingChannel, TrioChannel
from ipc.framing import HEADER, FrameTooLarge, ProtocolError, encode_frame

SERVER_MESSAGES: list[m.ServerMessage] = [
    m.Hello(protocol_version=m.PROTOCOL_VERSION, server_pid=4242),
    m.Generate(
        req_id=1,
        messages=[m.ChatMessage(role="user", content="Héllo ✓")],
        max_tokens=8,
        stop=["\n"],
        sampling=m.Sampling(temperature=0.2, seed=3),
    ),
    m.Cancel(req_id=1),
    m.GetStats(req_id=2),
    m.Shutdown(),
]

HANDLER_MESSAGES: list[m.HandlerMessage] = [
    m.Ready(protocol_version=m.PROTOCOL_VERSION, pid=99, context_length=2048, engine="fake"),
    m.Delta(req_id=1, text="Paris", n_tokens=2),
    m.Finished(req_id=1, reason="stop", usage=m.Usage(prompt_tokens=5, completion_tokens=2)),
    m.Failed(req_id=3, kind="invalid_request", message="bad", param="messages"),
    m.Stats(req_id=2, pid=99, rss_bytes=1 << 20, memory=m.EngineMemory(active_bytes=1)),
]


def _trio_socket_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    a, b = trio.socket.socketpair()
    return trio.SocketStream(a), trio.SocketStream(b)


def _trickle_stream(
    data: bytes, eof: bool = True
) -> trio.StapledStream[trio.testing.MemorySendStream, trio.testing.MemoryReceiveStream]:
    """A stream that delivers ``data`` one byte per ``receive_some``."""
    receive = trio.testing.MemoryReceiveStream()
    pieces: Iterator[int] = iter(data)

    async def hook() -> None:
        byte = next(pieces, None)
        if byte is not None:
            receive.put_data(bytes([byte]))
        elif eof:
            receive.put_eof()

    receive.receive_some_hook = hook
    return trio.StapledStream(trio.testing.MemorySendStream(), receive)


@pytest.mark.trio
async def test_memory_stream_round_trip() -> None:
    left, right = trio.testing.memory_stream_pair()
    server: TrioChannel[m.HandlerMessage] = TrioChannel(left, m.HandlerMessage)
    handler: TrioChannel[m.ServerMessage] = TrioChannel(right, m.ServerMessage)
    for request in SERVER_MESSAGES:
        await server.send(request)
    for answer in HANDLER_MESSAGES:
        await handler.send(answer)
    assert [await handler.receive() for _ in SERVER_MESSAGES] == SERVER_MESSAGES
    assert [await server.receive() for _ in HANDLER_MESSAGES] == HANDLER_MESSAGES
    await server.aclose()
    with pytest.raises(trio.EndOfChannel):
        await handler.receive()
    await handler.aclose()


@pytest.mark.trio
async def test_async_for_ends_at_eof() -> None:
    left, right = trio.testing.memory_stream_pair()
    sender: TrioChannel[m.ServerMessage] = TrioChannel(left, m.ServerMessage)
    receiver: TrioChannel[m.HandlerMessage] = TrioChannel(right, m.HandlerMessage)
    for msg in HANDLER_MESSAGES:
        await sender.send(msg)
    await sender.aclose()
    assert [msg async for msg in receiver] == HANDLER_MESSAGES


@pytest.mark.trio
async def test_byte_at_a_time() -> None:
    data = b"".join(encode_frame(msg) for msg in HANDLER_MESSAGES)
    chan: TrioChannel[m.HandlerMessage] = TrioChannel(_trickle_stream(data), m.HandlerMessage)
    assert [await chan.receive() for _ in HANDLER_MESSAGES] == HANDLER_MESSAGES
    with pytest.raises(trio.EndOfChannel):
        await chan.receive()


@pytest.mark.trio
async def test_eof_mid_frame_trickled() -> None:
    data = encode_frame(HANDLER_MESSAGES[0]) + encode_frame(HANDLER_MESSAGES[1])[:-1]
    chan: TrioChannel[m.HandlerMessage] = TrioChannel(_trickle_stream(data), m.HandlerMessage)
    assert await chan.receive() == HANDLER_MESSAGES[0]
    with pytest.raises(ProtocolError, match="inside a frame"):
        await chan.receive()


@pytest.mark.trio
async def test_concurrent_receive_is_refused() -> None:
    chan: TrioChannel[m.HandlerMessage] = TrioChannel(
        _trickle_stream(b"", eof=False), m.HandlerMessage
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(chan.receive)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await chan.receive()
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_socket_round_trip_with_large_messages() -> None:
    left, right = _trio_socket_pair()
    server: TrioChannel[m.HandlerMessage] = TrioChannel(left, m.HandlerMessage)
    handler: TrioChannel[m.ServerMessage] = TrioChannel(right, m.ServerMessage)
    big = [m.Delta(req_id=i, text=chr(65 + i) * (3_000_000 + i)) for i in range(3)]
    got: list[m.HandlerMessage] = []

    async def read_all() -> None:
        async for msg in server:
            got.append(msg)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_all)
        for msg in [*HANDLER_MESSAGES, *big]:
            await handler.send(msg)
        await handler.aclose()
    assert got == [*HANDLER_MESSAGES, *big]
    await server.aclose()


@pytest.mark.trio
async def test_concurrent_trio_senders_do_not_interleave() -> None:
    left, right = _trio_socket_pair()
    sender: TrioChannel[m.ServerMessage] = TrioChannel(left, m.ServerMessage)
    receiver: TrioChannel[m.HandlerMessage] = TrioChannel(right, m.HandlerMessage)
    n_tasks, n_msgs = 5, 20
    got: list[m.HandlerMessage] = []

    async def send_many(task: int) -> None:
        for i in range(n_msgs):
            await sender.send(m.Delta(req_id=task, text=f"{task}:{i};" * 20_000))

    async def read_all() -> None:
        async for msg in receiver:
            got.append(msg)

    async with trio.open_nursery() as outer:
        outer.start_soon(read_all)
        async with trio.open_nursery() as nursery:
            for task in range(n_tasks):
                nursery.start_soon(send_many, task)
        await sender.aclose()
    assert len(got) == n_tasks * n_msgs
    for task in range(n_tasks):
        texts = [msg.text for msg in got if isinstance(msg, m.Delta) and msg.req_id == task]
        assert texts == [f"{task}:{i};" * 20_000 for i in range(n_msgs)]
    await receiver.aclose()


@pytest.mark.trio
async def test_socket_clean_eof() -> None:
    left, right = _trio_socket_pair()
    chan: TrioChannel[m.HandlerMessage] = TrioChannel(right, m.HandlerMessage)
    await left.send_all(encode_frame(HANDLER_MESSAGES[0]))
    await left.aclose()
    assert await chan.receive() == HANDLER_MESSAGES[0]
    with pytest.raises(trio.EndOfChannel):
        await chan.receive()
    await chan.aclose()


@pytest.mark.trio
async def test_closing_a_socket_channel_wakes_its_reader() -> None:
    left, right = _trio_socket_pair()
    chan: TrioChannel[m.HandlerMessage] = TrioChannel(right, m.HandlerMessage)
    raised: list[BaseException] = []

    async def read() -> None:
        try:
            await chan.receive()
        except BaseException as exc:
            raised.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        await chan.aclose()
    assert len(raised) == 1 and isinstance(raised[0], trio.ClosedResourceError)
    with pytest.raises(trio.ClosedResourceError):
        await chan.receive()
    await left.aclose()


@pytest.mark.trio
async def test_socket_eof_mid_frame() -> None:
    left, right = _trio_socket_pair()
    chan: TrioChannel[m.HandlerMessage] = TrioChannel(right, m.HandlerMessage)
    frame = encode_frame(HANDLER_MESSAGES[0])
    await left.send_all(frame + frame[:5])
    await left.aclose()
    assert await chan.receive() == HANDLER_MESSAGES[0]
    with pytest.raises(ProtocolError, match="5 bytes pending"):
        await chan.receive()
    await chan.aclose()


@pytest.mark.trio
async def test_socket_eof_inside_header() -> None:
    left, right = _trio_socket_pair()
    chan: TrioChannel[m.HandlerMessage] = TrioChannel(right, m.HandlerMessage)
    await left.send_all(b"\x00\x00")
    await left.aclose()
    with pytest.raises(ProtocolError):
        await chan.receive()
    await chan.aclose()


@pytest.mark.trio
async def test_socket_oversize_and_garbage() -> None:
    left, right = _trio_socket_pair()
    chan: TrioChannel[m.HandlerMessage] = TrioChannel(right, m.HandlerMessage, max_frame=1000)
    await left.send_all(HEADER.pack(3) + b"\xc1\xc1\xc1" + HEADER.pack(1001))
    with pytest.raises(ProtocolError, match="invalid message"):
        await chan.receive()
    with pytest.raises(FrameTooLarge):
        await chan.receive()
    await left.aclose()
    await chan.aclose()


@pytest.mark.trio
async def test_send_oversize_message() -> None:
    left, _right = trio.testing.memory_stream_pair()
    chan: TrioChannel[m.HandlerMessage] = TrioChannel(
        left, m.HandlerMessage, max_frame=10, max_spill=20
    )
    with pytest.raises(FrameTooLarge, match="largest message of 20"):
        await chan.send(m.Delta(req_id=1, text="far too long for ten bytes"))


@pytest.mark.trio
async def test_trio_server_talks_to_blocking_handler() -> None:
    a, b = socket.socketpair()
    server: TrioChannel[m.HandlerMessage] = TrioChannel(
        trio.SocketStream(trio.socket.from_stdlib_socket(a)), m.HandlerMessage
    )
    handler: BlockingChannel[m.ServerMessage] = BlockingChannel(b, m.ServerMessage)

    def echo() -> None:
        while True:
            try:
                msg = handler.receive()
            except EOFError:
                handler.close()
                return
            if isinstance(msg, m.Cancel):
                handler.send(m.Finished(req_id=msg.req_id, reason="cancelled"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, echo)
        for req_id in range(50):
            await server.send(m.Cancel(req_id=req_id))
        answers = [await server.receive() for _ in range(50)]
        await server.aclose()
    assert answers == [m.Finished(req_id=i, reason="cancelled") for i in range(50)]


# --- BlockingChannel --------------------------------------------------------


@pytest.fixture
def blocking_pair() -> Iterator[
    tuple[BlockingChannel[m.ServerMessage], BlockingChannel[m.HandlerMessage]]
]:
    a, b = socket.socketpair()
    server: BlockingChannel[m.HandlerMessage] = BlockingChannel(a, m.HandlerMessage)
    handler: BlockingChannel[m.ServerMessage] = BlockingChannel(b, m.ServerMessage)
    with server, handler:
        yield handler, server


def test_blocking_round_trip(
    blocking_pair: tuple[BlockingChannel[m.ServerMessage], BlockingChannel[m.HandlerMessage]],
) -> None:
    handler, server = blocking_pair
    for request in SERVER_MESSAGES:
        server.send(request)
    for answer in HANDLER_MESSAGES:
        handler.send(answer)
    assert [handler.receive() for _ in SERVER_MESSAGES] == SERVER_MESSAGES
    assert [server.receive() for _ in HANDLER_MESSAGES] == HANDLER_MESSAGES


def test_blocking_clean_eof() -> None:
    a, b = socket.socketpair()
    chan: BlockingChannel[m.HandlerMessage] = BlockingChannel(b, m.HandlerMessage)
    a.sendall(encode_frame(HANDLER_MESSAGES[0]))
    a.close()
    assert chan.receive() == HANDLER_MESSAGES[0]
    with pytest.raises(EOFError):
        chan.receive()
    chan.close()


def test_blocking_eof_mid_frame() -> None:
    a, b = socket.socketpair()
    chan: BlockingChannel[m.HandlerMessage] = BlockingChannel(b, m.HandlerMessage)
    a.sendall(encode_frame(HANDLER_MESSAGES[0])[:-1])
    a.close()
    with pytest.raises(ProtocolError, match="inside a frame"):
        chan.receive()
    chan.close()


def test_blocking_garbage_and_oversize() -> None:
    a, b = socket.socketpair()
    chan: BlockingChannel[m.HandlerMessage] = BlockingChannel(b, m.HandlerMessage, max_frame=64)
    a.sendall(HEADER.pack(2) + b"\x92\x01" + HEADER.pack(65) + b"x" * 65)
    with pytest.raises(ProtocolError, match="invalid message"):
        chan.receive()
    with pytest.raises(FrameTooLarge):
        chan.receive()
    a.close()
    chan.close()


def test_blocking_send_oversize() -> None:
    a, b = socket.socketpair()
    with BlockingChannel(a, m.HandlerMessage, max_frame=10, max_spill=20) as chan:
        with pytest.raises(FrameTooLarge, match="largest message of 20"):
            chan.send(m.Delta(req_id=1, text="far too long for ten bytes"))
    b.close()


def test_blocking_concurrent_senders_do_not_interleave(
    blocking_pair: tuple[BlockingChannel[m.ServerMessage], BlockingChannel[m.HandlerMessage]],
) -> None:
    handler, server = blocking_pair
    n_threads, n_msgs = 8, 40
    barrier = threading.Barrier(n_threads)

    def send_many(thread: int) -> None:
        barrier.wait()
        for i in range(n_msgs):
            # Large enough that sendall needs several writes.
            handler.send(m.Delta(req_id=thread, text=f"{thread}:{i};" * 30_000))

    threads = [threading.Thread(target=send_many, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    got = [server.receive() for _ in range(n_threads * n_msgs)]
    for t in threads:
        t.join()
    for thread in range(n_threads):
        texts = [msg.text for msg in got if isinstance(msg, m.Delta) and msg.req_id == thread]
        assert texts == [f"{thread}:{i};" * 30_000 for i in range(n_msgs)]


def test_blocking_close_wakes_reader() -> None:
    a, b = socket.socketpair()
    chan: BlockingChannel[m.HandlerMessage] = BlockingChannel(b, m.HandlerMessage)
    errors: list[BaseException] = []
    started = threading.Event()

    def reader() -> None:
        started.set()
        try:
            chan.receive()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    started.wait()
    threading.Event().wait(0.2)  # let it block in recv
    chan.close()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], EOFError)
    a.close()


def test_blocking_second_reader_is_refused() -> None:
    a, b = socket.socketpair()
    chan: BlockingChannel[m.HandlerMessage] = BlockingChannel(b, m.HandlerMessage)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            chan.receive()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    threading.Event().wait(0.2)  # let it block in recv
    with pytest.raises(RuntimeError, match="already receiving"):
        chan.receive()
    a.close()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], EOFError)
    chan.close()
