"""Message channels over a byte stream: a trio one for the server, a blocking
one for handler processes. Both send any message Struct and receive one type,
usually the tagged union of the other side's messages."""

from __future__ import annotations

import os
import socket
import threading
from collections import deque
from types import TracebackType
from typing import Any, Generic, TypeVar, overload

import msgspec
import trio

from ipc.framing import DEFAULT_MAX_FRAME, Codec, FrameDecoder, ProtocolError, encode_frame

__all__ = ["BlockingChannel", "TrioChannel"]

T = TypeVar("T")

_RECEIVE_SIZE = 256 * 1024


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
    ) -> None: ...
    @overload
    def __init__(
        self: TrioChannel[Any],
        stream: trio.abc.Stream,
        decode_type: Any,
        max_frame: int = ...,
    ) -> None: ...
    def __init__(
        self, stream: trio.abc.Stream, decode_type: Any, max_frame: int = DEFAULT_MAX_FRAME
    ) -> None:
        self.stream = stream
        self.max_frame = max_frame
        self._codec: Codec[T] = Codec(decode_type)
        self._decoder = FrameDecoder(max_frame)
        self._bodies: deque[bytes] = deque()
        self._send_lock = trio.Lock()
        self._receiving = False
        # A socket stream is read with one wait and one recv per wakeup;
        # trio's receive_some would first try a recv that fails, then wait.
        self._socket = stream.socket if isinstance(stream, trio.SocketStream) else None

    async def send(self, value: msgspec.Struct) -> None:
        """Send one message; concurrent senders wait their turn."""
        frame = encode_frame(value, self.max_frame)
        async with self._send_lock:
            await self.stream.send_all(frame)

    async def receive(self) -> T:
        """Receive the next message.

        Raises :class:`trio.EndOfChannel` on a clean end of stream,
        :class:`ProtocolError` on an end of stream inside a frame or an invalid
        message, and :class:`FrameTooLarge` on an oversize frame.
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
        self: BlockingChannel[T], sock: socket.socket, decode_type: type[T], max_frame: int = ...
    ) -> None: ...
    @overload
    def __init__(
        self: BlockingChannel[Any], sock: socket.socket, decode_type: Any, max_frame: int = ...
    ) -> None: ...
    def __init__(
        self, sock: socket.socket, decode_type: Any, max_frame: int = DEFAULT_MAX_FRAME
    ) -> None:
        self.sock = sock
        self.max_frame = max_frame
        self._codec: Codec[T] = Codec(decode_type)
        self._decoder = FrameDecoder(max_frame)
        self._bodies: deque[bytes] = deque()
        self._send_lock = threading.Lock()
        self._receive_lock = threading.Lock()

    def send(self, msg: msgspec.Struct) -> None:
        """Send one message; safe to call from several threads."""
        frame = encode_frame(msg, self.max_frame)
        with self._send_lock:
            self.sock.sendall(frame)

    def receive(self) -> T:
        """Block until the next message arrives and return it.

        Raises :class:`EOFError` on a clean end of stream, :class:`ProtocolError`
        on an end of stream inside a frame, an invalid message or an oversize
        frame (:class:`FrameTooLarge`).
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
