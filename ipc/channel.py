"""Message channels over a byte stream: a trio one for the server, a blocking
one for handler processes. Both send any message Struct and receive one type,
usually the tagged union of the other side's messages.

A message larger than ``max_frame`` (and no larger than ``max_spill``) is
spilled: the sending channel writes its encoding into a shared-memory segment
(``ipc.shm.spill``, named with ``spill_pid``) and sends a small spill frame;
the receiving channel reads the segment, unlinks it and decodes the message,
so both ends see an ordinary ``send``/``receive``. A message larger than
``max_spill``, or one whose spill fails, raises :class:`FrameTooLarge`
(:class:`SpillFailed`) from ``send`` with nothing sent: the channel stays
usable. See ``ipc.shm`` for who unlinks a spilled segment.
"""

from __future__ import annotations

import os
import socket
import threading
from collections import deque
from types import TracebackType
from typing import Any, Generic, TypeVar, overload

import msgspec
import trio

from ipc import shm
from ipc.framing import (
    DEFAULT_MAX_FRAME,
    MAX_SPILL,
    Codec,
    FrameDecoder,
    ProtocolError,
    SpillFailed,
    SpillNeeded,
    encode_frame,
    spill_frame,
)

__all__ = ["BlockingChannel", "TrioChannel"]

T = TypeVar("T")

_RECEIVE_SIZE = 256 * 1024


def _spill(big: SpillNeeded, owner_pid: int) -> tuple[str, bytes]:
    """Put ``big``'s body in a segment: its name and the spill frame naming it."""
    with big.body as body:
        try:
            name = shm.spill(body, owner_pid)
        except OSError as exc:
            raise SpillFailed(
                f"{big.message_type} of {big.size} bytes is too large for a frame "
                f"and could not be put in shared memory: {exc}"
            ) from exc
    return name, spill_frame(name, big.size)


class TrioChannel(trio.abc.SendChannel[msgspec.Struct], trio.abc.ReceiveChannel[T]):
    """A framed message channel over a trio stream.

    Any number of tasks may send (one at a time, in turn); one task receives.
    ``receive`` raises :class:`trio.EndOfChannel` when the peer closed cleanly,
    so ``async for msg in channel`` ends there. ``TrioChannel(stream,
    HandlerMessage)`` is a ``TrioChannel[Any]`` to a type checker; annotate it
    as ``TrioChannel[HandlerMessage]``.

    A send cancelled half way leaves the stream unusable (as with any trio
    stream); shield sends that must complete.
    """

    @overload
    def __init__(
        self: TrioChannel[T],
        stream: trio.abc.Stream,
        decode_type: type[T],
        max_frame: int = ...,
        *,
        max_spill: int = ...,
        spill_pid: int | None = ...,
    ) -> None: ...
    @overload
    def __init__(
        self: TrioChannel[Any],
        stream: trio.abc.Stream,
        decode_type: Any,
        max_frame: int = ...,
        *,
        max_spill: int = ...,
        spill_pid: int | None = ...,
    ) -> None: ...
    def __init__(
        self,
        stream: trio.abc.Stream,
        decode_type: Any,
        max_frame: int = DEFAULT_MAX_FRAME,
        *,
        max_spill: int = MAX_SPILL,
        spill_pid: int | None = None,
    ) -> None:
        self.stream = stream
        self.max_frame = max_frame
        self.max_spill = max_spill
        self.spill_pid = os.getpid() if spill_pid is None else spill_pid
        self._codec: Codec[T] = Codec(decode_type)
        self._decoder = FrameDecoder(max_frame, max_spill=max_spill, load_spill=shm.take_spill)
        self._bodies: deque[bytes] = deque()
        self._send_lock = trio.Lock()
        self._receiving = False
        # A socket stream is read with one wait and one recv per wakeup;
        # trio's receive_some would first try a recv that fails, then wait.
        self._socket = stream.socket if isinstance(stream, trio.SocketStream) else None

    async def send(self, value: msgspec.Struct) -> None:
        """Send one message; concurrent senders wait their turn.

        Raises :class:`FrameTooLarge` (:class:`SpillFailed`) for a message
        that cannot travel, with nothing sent.
        """
        try:
            frame = encode_frame(value, self.max_frame, self.max_spill)
        except SpillNeeded as big:
            await self._send_spilled(big)
            return
        async with self._send_lock:
            await self.stream.send_all(frame)

    async def _send_spilled(self, big: SpillNeeded) -> None:
        # Copying a large message is blocking work: a worker thread does it,
        # shielded so that the segment's name is never lost to a cancel.
        with trio.CancelScope(shield=True):
            name, frame = await trio.to_thread.run_sync(_spill, big, self.spill_pid)
        sent = False
        try:
            async with self._send_lock:
                await self.stream.send_all(frame)
            sent = True
        finally:
            if not sent:
                shm.discard_spill(name)

    async def receive(self) -> T:
        """Receive the next message.

        Raises :class:`trio.EndOfChannel` on a clean end of stream,
        :class:`ProtocolError` on an end of stream inside a frame or an invalid
        message or a bad spill frame, and :class:`FrameTooLarge` on an oversize
        frame.
        """
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this channel")
        self._receiving = True
        try:
            while not self._bodies:
                if self._decoder.error is not None:
                    self._decoder.feed(b"")  # raises it
                data = await self._receive_some()
                if not data:
                    if self._decoder.pending:
                        raise ProtocolError(
                            f"stream closed inside a frame ({self._decoder.pending} bytes pending)"
                        )
                    raise trio.EndOfChannel
                self._bodies.extend(self._decoder.feed(data))
            return self._codec.decode(self._bodies.popleft())
        finally:
            self._receiving = False

    async def _receive_some(self) -> bytes | bytearray:
        if self._socket is None:
            return await self.stream.receive_some(_RECEIVE_SIZE)
        while True:
            fd = self._socket.fileno()
            if fd == -1:  # closed: never wait on a number another file may reuse
                raise trio.ClosedResourceError("the channel was closed")
            await trio.lowlevel.wait_readable(fd)
            try:
                return os.read(fd, _RECEIVE_SIZE)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(exc) from exc

    async def aclose(self) -> None:
        """Close the underlying stream."""
        await self.stream.aclose()


class BlockingChannel(Generic[T]):
    """The blocking twin of :class:`TrioChannel` over a connected socket.

    ``send`` is thread-safe; ``receive`` belongs to one reader thread.
    ``close`` wakes a reader blocked in ``receive`` (it sees end of stream).
    """

    @overload
    def __init__(
        self: BlockingChannel[T],
        sock: socket.socket,
        decode_type: type[T],
        max_frame: int = ...,
        *,
        max_spill: int = ...,
        spill_pid: int | None = ...,
    ) -> None: ...
    @overload
    def __init__(
        self: BlockingChannel[Any],
        sock: socket.socket,
        decode_type: Any,
        max_frame: int = ...,
        *,
        max_spill: int = ...,
        spill_pid: int | None = ...,
    ) -> None: ...
    def __init__(
        self,
        sock: socket.socket,
        decode_type: Any,
        max_frame: int = DEFAULT_MAX_FRAME,
        *,
        max_spill: int = MAX_SPILL,
        spill_pid: int | None = None,
    ) -> None:
        self.sock = sock
        self.max_frame = max_frame
        self.max_spill = max_spill
        self.spill_pid = os.getpid() if spill_pid is None else spill_pid
        self._codec: Codec[T] = Codec(decode_type)
        self._decoder = FrameDecoder(max_frame, max_spill=max_spill, load_spill=shm.take_spill)
        self._bodies: deque[bytes] = deque()
        self._send_lock = threading.Lock()
        self._receive_lock = threading.Lock()

    def send(self, msg: msgspec.Struct) -> None:
        """Send one message; safe to call from several threads.

        Raises :class:`FrameTooLarge` (:class:`SpillFailed`) for a message
        that cannot travel, with nothing sent.
        """
        try:
            frame = encode_frame(msg, self.max_frame, self.max_spill)
        except SpillNeeded as big:
            name, frame = _spill(big, self.spill_pid)
            try:
                with self._send_lock:
                    self.sock.sendall(frame)
            except BaseException:
                shm.discard_spill(name)
                raise
            return
        with self._send_lock:
            self.sock.sendall(frame)

    def receive(self) -> T:
        """Block until the next message arrives and return it.

        Raises :class:`EOFError` on a clean end of stream, :class:`ProtocolError`
        on an end of stream inside a frame, an invalid message, a bad spill
        frame or an oversize frame (:class:`FrameTooLarge`).
        """
        if not self._receive_lock.acquire(blocking=False):
            raise RuntimeError("another thread is already receiving on this channel")
        try:
            while not self._bodies:
                if self._decoder.error is not None:
                    self._decoder.feed(b"")  # raises it
                data = self.sock.recv(_RECEIVE_SIZE)
                if not data:
                    if self._decoder.pending:
                        raise ProtocolError(
                            f"socket closed inside a frame ({self._decoder.pending} bytes pending)"
                        )
                    raise EOFError("peer closed the channel")
                self._bodies.extend(self._decoder.feed(data))
            return self._codec.decode(self._bodies.popleft())
        finally:
            self._receive_lock.release()

    def close(self) -> None:
        """Shut the socket down (waking a blocked reader) and close it."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected any more
        self.sock.close()

    def __enter__(self) -> BlockingChannel[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
