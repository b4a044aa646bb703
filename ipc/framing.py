"""Length-prefixed msgpack frames, and spill frames for messages too large for one.

A frame is a 4-byte big-endian body length followed by the msgpack body.
Bodies larger than a channel's ``max_frame`` never travel inline: the encoder
never writes one and the decoder rejects the header before buffering the body.

A message larger than ``max_frame`` but no larger than ``max_spill`` travels
as a *spill frame*: its header has the top bit (``SPILL_FLAG``) set over the
length of a short reference body (the message's size as 8 bytes, then the
name of the shared-memory segment holding its msgpack encoding, ASCII).
Channels do the spilling (``encode_frame`` raises :class:`SpillNeeded` and
hands them the encoded body) and the decoder loads a spilled body through the
``load_spill`` callable it was given. A spill header announces more than any
``max_frame`` (which must stay below 2 GiB), so the common small frame is
decoded without any extra test.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

import msgspec

__all__ = [
    "DEFAULT_MAX_FRAME",
    "HEADER",
    "MAX_SPILL",
    "SPILL_FLAG",
    "Codec",
    "FrameDecoder",
    "FrameTooLarge",
    "LoadSpill",
    "ProtocolError",
    "SpillFailed",
    "SpillNeeded",
    "encode_frame",
    "spill_frame",
]

T = TypeVar("T")

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME = 16 * 1024 * 1024
# The largest message a channel spills to shared memory (and so the largest a
# peer's spill frame may make the receiver map).
MAX_SPILL = 1024 * 1024 * 1024
SPILL_FLAG = 0x8000_0000
_SPILL_SIZE = struct.Struct(">Q")
_MAX_SPILL_REF = 64  # bytes in a spill frame's body: the size and a segment name

LoadSpill = Callable[[str, int], bytes]
"""Return the ``size`` bytes of message held in segment ``name`` (and unlink it)."""

# One encoder for the process; encoding into a per-thread buffer that keeps its
# capacity between calls avoids reallocating for every frame.
_encoder = msgspec.msgpack.Encoder()
_local = threading.local()
_KEEP_BUFFER = 1024 * 1024  # drop a buffer that grew past this after use


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame or message."""


class FrameTooLarge(ProtocolError):
    """A frame body exceeds the maximum frame size.

    Raised by a send when the message is larger than the channel can carry at
    all; nothing was sent then and the channel is still usable.
    """


class SpillFailed(FrameTooLarge):
    """A message too large for a frame could not be put in shared memory
    (``/dev/shm`` full, too many open files...); nothing was sent."""


class SpillNeeded(Exception):
    """``encode_frame``: the message is too large for a frame and must spill.

    ``body`` is its msgpack encoding, which the exception owns (the encoder
    took a fresh buffer for later messages).
    """

    def __init__(self, msg: msgspec.Struct, buf: bytearray) -> None:
        super().__init__(f"{type(msg).__name__} encodes to {len(buf) - HEADER.size} bytes")
        self.message_type = type(msg).__name__
        self._buf = buf

    @property
    def body(self) -> memoryview:
        """The encoded message (release the view when done)."""
        return memoryview(self._buf)[HEADER.size :]

    @property
    def size(self) -> int:
        """Bytes in ``body``."""
        return len(self._buf) - HEADER.size


def encode_frame(
    msg: msgspec.Struct, max_frame: int = DEFAULT_MAX_FRAME, max_spill: int = 0
) -> bytes:
    """Return ``msg`` as one frame: header plus msgpack body.

    A body longer than ``max_frame`` raises :class:`SpillNeeded` when it is no
    longer than ``max_spill``, and :class:`FrameTooLarge` otherwise.
    """
    buf: bytearray | None = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = bytearray(256)
    _encoder.encode_into(msg, buf, HEADER.size)
    size = len(buf) - HEADER.size
    try:
        if size > max_frame:
            if size <= max_spill:
                _local.buf = None  # the exception owns this buffer now
                raise SpillNeeded(msg, buf)
            limit = f"the maximum frame of {max_frame}"
            if max_spill:
                limit = f"the largest message of {max_spill}"
            raise FrameTooLarge(f"{type(msg).__name__} encodes to {size} bytes, more than {limit}")
        HEADER.pack_into(buf, 0, size)
        return bytes(buf)
    finally:
        if len(buf) > _KEEP_BUFFER:
            _local.buf = None


def spill_frame(name: str, size: int) -> bytes:
    """The frame telling the peer that a ``size``-byte message waits in segment ``name``."""
    ref = _SPILL_SIZE.pack(size) + name.encode("ascii")
    if len(ref) > _MAX_SPILL_REF:
        raise ValueError(f"segment name too long for a spill frame: {name!r}")
    return HEADER.pack(SPILL_FLAG | len(ref)) + ref


def _parse_spill(ref: bytes, max_spill: int) -> tuple[str, int]:
    if len(ref) <= _SPILL_SIZE.size:
        raise ProtocolError(f"spill frame of {len(ref)} bytes names no segment")
    (size,) = _SPILL_SIZE.unpack_from(ref)
    if not 0 < size <= max_spill:
        raise ProtocolError(f"spill frame announces {size} bytes, outside 1..{max_spill}")
    try:
        name = ref[_SPILL_SIZE.size :].decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError("spill frame names a segment in non-ASCII bytes") from None
    return name, size


class FrameDecoder:
    """Split a byte stream into frame bodies, however it arrives in pieces.

    With ``load_spill`` (and ``max_spill``), a spill frame's body is loaded
    from its segment and returned like any other; without, a spill frame is
    an oversize frame. Not thread-safe: one decoder belongs to one reader.
    """

    __slots__ = ("_buf", "_error", "_load_spill", "max_frame", "max_spill")

    def __init__(
        self,
        max_frame: int = DEFAULT_MAX_FRAME,
        *,
        max_spill: int = MAX_SPILL,
        load_spill: LoadSpill | None = None,
    ) -> None:
        if not 0 < max_frame < SPILL_FLAG:
            raise ValueError(f"max_frame must be between 1 and {SPILL_FLAG - 1}")
        self.max_frame = max_frame
        self.max_spill = max_spill if load_spill is not None else 0
        self._load_spill = load_spill
        self._buf = bytearray()
        self._error: ProtocolError | None = None

    @property
    def pending(self) -> int:
        """Bytes buffered that do not form a complete frame yet."""
        return len(self._buf)

    @property
    def error(self) -> ProtocolError | None:
        """The error that ended the stream: an oversize header or a bad spill frame."""
        return self._error

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add ``data`` and return the bodies of all frames now complete.

        Raises :class:`FrameTooLarge` as soon as a header announces a body
        longer than ``max_frame``, without buffering that body, and
        :class:`ProtocolError` for a spill frame that is malformed, too large
        or whose segment cannot be read. Frames that complete before the bad
        one in the same call are still returned, and the call after raises.
        The stream cannot be resynchronised, so every later call raises too;
        ``error`` tells without feeding.
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
                if size > self.max_frame:  # a spill frame, or the end of the stream
                    ref_size = size ^ SPILL_FLAG
                    if not (self.max_spill and size & SPILL_FLAG and ref_size <= _MAX_SPILL_REF):
                        self._error = FrameTooLarge(
                            f"frame header announces {size} bytes, "
                            f"more than the maximum frame of {self.max_frame}"
                        )
                        break
                    body_end = start + HEADER.size + ref_size
                    if body_end > end:
                        break
                    try:
                        frames.append(self._unspill(view[start + HEADER.size : body_end].tobytes()))
                    except ProtocolError as exc:
                        self._error = exc
                        break
                    start = body_end
                    continue
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

    def _unspill(self, ref: bytes) -> bytes:
        name, size = _parse_spill(ref, self.max_spill)
        assert self._load_spill is not None
        try:
            return self._load_spill(name, size)
        except ProtocolError:
            raise
        except Exception as exc:  # the loader's own errors: missing, too small, foreign
            raise ProtocolError(f"spill frame unreadable: {exc}") from exc


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
