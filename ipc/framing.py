"""Length-prefixed msgpack frames.

A frame is a 4-byte big-endian body length followed by the msgpack body.
Bodies larger than a channel's ``max_frame`` are refused on both sides: the
encoder never writes one and the decoder rejects the header before buffering
the body.
"""

from __future__ import annotations

import struct
import threading
from typing import Any, Generic, TypeVar, overload

import msgspec

__all__ = [
    "DEFAULT_MAX_FRAME",
    "HEADER",
    "Codec",
    "FrameDecoder",
    "FrameTooLarge",
    "ProtocolError",
    "encode_frame",
]

T = TypeVar("T")

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME = 16 * 1024 * 1024

# One encoder for the process; encoding into a per-thread buffer that keeps its
# capacity between calls avoids reallocating for every frame.
_encoder = msgspec.msgpack.Encoder()
_local = threading.local()
_KEEP_BUFFER = 1024 * 1024  # drop a buffer that grew past this after use


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame or message."""


class FrameTooLarge(ProtocolError):
    """A frame body exceeds the maximum frame size."""


def encode_frame(msg: msgspec.Struct, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """Return ``msg`` as one frame: header plus msgpack body.

    Raises :class:`FrameTooLarge` if the body is longer than ``max_frame``.
    """
    buf: bytearray | None = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = bytearray(256)
    _encoder.encode_into(msg, buf, HEADER.size)
    size = len(buf) - HEADER.size
    try:
        if size > max_frame:
            raise FrameTooLarge(
                f"{type(msg).__name__} encodes to {size} bytes, "
                f"more than the maximum frame of {max_frame}"
            )
        HEADER.pack_into(buf, 0, size)
        return bytes(buf)
    finally:
        if len(buf) > _KEEP_BUFFER:
            _local.buf = None


class FrameDecoder:
    """Split a byte stream into frame bodies, however it arrives in pieces.

    Not thread-safe: one decoder belongs to one reader.
    """

    __slots__ = ("_buf", "_error", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._error: FrameTooLarge | None = None

    @property
    def pending(self) -> int:
        """Bytes buffered that do not form a complete frame yet."""
        return len(self._buf)

    @property
    def error(self) -> FrameTooLarge | None:
        """The error that ended the stream, once an oversize header was seen."""
        return self._error

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add ``data`` and return the bodies of all frames now complete.

        Raises :class:`FrameTooLarge` as soon as a header announces a body
        longer than ``max_frame``, without buffering that body. Frames that
        complete before the bad header in the same call are still returned,
        and the call after raises. The stream cannot be resynchronised, so
        every later call raises too; ``error`` tells without feeding.
        """
        if self._error is not None:
            raise self._error.with_traceback(None)
        buf = self._buf
        if not buf and len(data) > HEADER.size:  # the usual case: one whole frame
            (size,) = HEADER.unpack_from(data)
            if len(data) == HEADER.size + size and size <= self.max_frame:
                return [bytes(data[HEADER.size :])]
        buf += data
        frames: list[bytes] = []
        start = 0
        end = len(buf)
        with memoryview(buf) as view:
            while end - start >= HEADER.size:
                (size,) = HEADER.unpack_from(view, start)
                if size > self.max_frame:
                    self._error = FrameTooLarge(
                        f"frame header announces {size} bytes, "
                        f"more than the maximum frame of {self.max_frame}"
                    )
                    break
                body_end = start + HEADER.size + size
                if body_end > end:
                    break
                frames.append(view[start + HEADER.size : body_end].tobytes())
                start = body_end
        if self._error is not None:
            buf.clear()
            if not frames:
                raise self._error
            return frames
        if start:
            del buf[:start]
        return frames


class Codec(Generic[T]):
    """Decode frame bodies into one type, usually a tagged union of Structs.

    ``Codec(ServerMessage)`` is a ``Codec[Any]`` to a type checker (a union is
    not a ``type``); annotate it as ``Codec[ServerMessage]``.
    """

    __slots__ = ("_decoder",)

    @overload
    def __init__(self: Codec[T], type: type[T]) -> None: ...
    @overload
    def __init__(self: Codec[Any], type: Any) -> None: ...
    def __init__(self, type: Any) -> None:
        self._decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(type)

    @property
    def type(self) -> Any:
        """The type this codec decodes into."""
        return self._decoder.type

    def decode(self, body: bytes | bytearray | memoryview) -> T:
        """Decode one frame body; raise :class:`ProtocolError` if it is invalid."""
        try:
            return self._decoder.decode(body)
        except msgspec.DecodeError as exc:  # ValidationError is a subclass
            raise ProtocolError(f"invalid message: {exc}") from exc
