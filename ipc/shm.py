"""Payloads that travel in shared memory instead of inside a frame.

Ownership: the process that creates a segment (through a :class:`ShmOwner`)
unlinks it; readers attach, copy and close, never unlink. Segment names carry
the owner's pid, ``bd<pid>-<hex>``, so :func:`sweep` can remove the segments
of a process that died without cleaning up.

Spilled messages are the one exception: a channel that must send a message
too large for a frame writes it into a segment (:func:`spill`) and sends a
spill frame naming it; the receiving channel takes it (:func:`take_spill`:
opens, unlinks, copies out). Ownership passes with the frame, because the
creator cannot know when the message was read without an extra round trip
on every large message. The creator unlinks only what it could not send
(:func:`discard_spill`). A spill frame that never reaches a reader (the peer
died) leaves a segment named with its creator's pid: the start-up sweep
removes it once that process is gone. Spill segments bypass the resource
tracker: they must outlive a sender that exits right after sending.
"""

from __future__ import annotations

import _posixshmem
import errno
import mmap
import os
import re
import secrets
import sys
from collections.abc import Callable
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory

import psutil

from ipc.messages import ShmRef

__all__ = [
    "PREFIX",
    "THRESHOLD",
    "ShmError",
    "ShmOwner",
    "ShmPool",
    "discard_spill",
    "pack",
    "read",
    "spill",
    "sweep",
    "take_spill",
    "unpack",
]

THRESHOLD = 256 * 1024
PREFIX = "bd"

_NAME_RE = re.compile(rf"^{PREFIX}(\d+)-[0-9a-f]+$")
_SHM_DIR = "/dev/shm"


class ShmError(Exception):
    """A shared-memory segment is missing, malformed or too small."""


class ShmOwner:
    """Creates segments and unlinks them: the one owner of each.

    ``owner_pid`` goes into the names (default: this process); pass the
    server's pid from a handler to have the server's start-up sweep cover
    segments the handler left behind.
    """

    def __init__(self, owner_pid: int | None = None) -> None:
        self.owner_pid = os.getpid() if owner_pid is None else owner_pid
        self._segments: dict[str, SharedMemory] = {}

    def __len__(self) -> int:
        return len(self._segments)

    def create(self, data: bytes | bytearray | memoryview) -> ShmRef:
        """Create a segment holding ``data`` and return its reference."""
        with memoryview(data) as view, view.cast("B") as octets:
            size = octets.nbytes
            while True:
                name = f"{PREFIX}{self.owner_pid}-{secrets.token_hex(4)}"
                try:
                    # A segment cannot be empty; an empty payload gets one byte.
                    shm = SharedMemory(name, create=True, size=max(size, 1))
                except FileExistsError:
                    continue
                break
            _buf(shm)[:size] = octets
        self._segments[name] = shm
        return ShmRef(name=name, size=size)

    def release(self, ref: ShmRef | str) -> None:
        """Close and unlink a segment this owner created; idempotent."""
        name = ref if isinstance(ref, str) else ref.name
        shm = self._segments.pop(name, None)
        if shm is None:
            return
        shm.close()
        try:
            shm.unlink()
        except FileNotFoundError:
            # Removed behind our back (a sweep): still stop the tracker from
            # unlinking it again and warning about a leak at exit.
            resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]

    def release_all(self) -> None:
        """Release every segment this owner still holds."""
        for name in list(self._segments):
            self.release(name)


def _buf(shm: SharedMemory) -> memoryview:
    buf = shm.buf
    assert buf is not None, "segment already closed"
    return buf


def read(ref: ShmRef) -> bytes:
    """Copy the payload out of a segment; never unlinks it.

    Raises :class:`ShmError` if the segment does not exist (already released)
    or is smaller than ``ref.size``.
    """
    return _copy_out(ref.name, ref.size, unlink=False)


def _copy_out(name: str, size: int, *, unlink: bool) -> bytes:
    """The first ``size`` bytes of segment ``name`` (unlinked first if
    ``unlink``). Opened by name and mapped, not attached as a
    ``SharedMemory``: Python < 3.13 registers an attached segment with the
    resource tracker (two messages to its process per read, and an unlink at
    exit unless undone)."""
    if not _NAME_RE.match(name):
        raise ShmError(f"not a shared-memory payload name: {name!r}")
    try:
        fd = _posixshmem.shm_open("/" + name, os.O_RDONLY, 0)
    except FileNotFoundError:
        raise ShmError(
            f"shared-memory segment {name!r} does not exist (already released?)"
        ) from None
    try:
        if unlink:  # the open descriptor keeps the memory until closed
            _posixshmem.shm_unlink("/" + name)
        held = os.fstat(fd).st_size
        if held < size:  # mapping past the end would fault
            raise ShmError(
                f"shared-memory segment {name!r} holds {held} bytes, "
                f"fewer than the {size} announced"
            )
        if size == 0:
            return b""
        with mmap.mmap(fd, size, prot=mmap.PROT_READ) as mapped:
            return mapped[:size]
    finally:
        os.close(fd)


def pack(data: bytes, owner: ShmOwner, threshold: int = THRESHOLD) -> bytes | ShmRef:
    """Return ``data`` inline if shorter than ``threshold``, else in a segment
    created by ``owner`` (which must release it once the peer has read it)."""
    if len(data) < threshold:
        return data
    return owner.create(data)


def unpack(payload: bytes | ShmRef) -> bytes:
    """Return the bytes of a payload made by :func:`pack`."""
    if isinstance(payload, ShmRef):
        return read(payload)
    return payload


def _new_name(owner_pid: int) -> str:
    return f"{PREFIX}{owner_pid}-{secrets.token_hex(4)}"


def spill(data: bytes | bytearray | memoryview, owner_pid: int | None = None) -> str:
    """Write ``data`` (not empty) into a new segment and return its name.

    The segment belongs to whoever reads it with :func:`take_spill`. Raises
    :class:`OSError` (``ENOSPC`` when ``/dev/shm`` is full) with nothing left
    behind. On Linux the bytes go in with ``write``, which reports a full
    ``/dev/shm`` as an error; writing through a mapping would crash the
    process with SIGBUS instead.
    """
    pid = os.getpid() if owner_pid is None else owner_pid
    with memoryview(data) as view, view.cast("B") as octets:
        size = octets.nbytes
        if size == 0:
            raise ValueError("cannot spill an empty message")
        while True:
            name = _new_name(pid)
            try:
                fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
            except FileExistsError:
                continue
            break
        try:
            if sys.platform == "linux":
                written = 0
                while written < size:
                    written += os.write(fd, octets[written:])
            else:  # macOS: shared memory takes no write(); size it, then map it
                os.ftruncate(fd, size)
                with mmap.mmap(fd, size) as mapped:
                    mapped[:] = octets
        except BaseException:
            _posixshmem.shm_unlink("/" + name)
            raise
        finally:
            os.close(fd)
    return name


def take_spill(name: str, size: int) -> bytes:
    """Copy a spilled message out of its segment and unlink the segment.

    Raises :class:`ShmError` if ``name`` is not one of ours, the segment does
    not exist, or it holds fewer than ``size`` bytes (it is unlinked then too).
    """
    return _copy_out(name, size, unlink=True)


class ShmPool:
    """Segments kept for reuse, for payloads that come and go with requests
    (images). Writing into a fresh segment pays for every page the kernel
    must allocate and clear: a 4-megapixel PNG (7.7 MB) took 7.5 ms through a
    new mapping, 1.3 ms written into a kept segment. A payload takes the
    smallest free segment it fits in, else a new one sized up to whole MiB;
    released segments are kept while the free ones hold at most
    ``keep_bytes``. Bytes go in with ``pwrite`` into allocated pages, so a
    full ``/dev/shm`` is an OSError, never a SIGBUS. Off Linux (no
    ``fallocate`` on shared memory) each payload gets a segment of its own.
    """

    def __init__(self, keep_bytes: int = 64 << 20, owner_pid: int | None = None) -> None:
        self.keep_bytes = keep_bytes
        self._pid = os.getpid() if owner_pid is None else owner_pid
        self._fds: dict[str, tuple[int, int]] = {}  # name -> (fd, capacity)
        self._free: set[str] = set()
        self._owner = ShmOwner(owner_pid)

    def put(self, data: bytes) -> ShmRef:
        """A segment holding ``data``, until :meth:`release`."""
        if sys.platform != "linux":
            return self._owner.create(data)
        fits = [n for n in self._free if self._fds[n][1] >= len(data)]
        name = min(fits, key=lambda n: self._fds[n][1]) if fits else self._new(len(data))
        self._free.discard(name)
        fd = self._fds[name][0]
        written = 0
        with memoryview(data) as view:
            while written < len(data):
                written += os.pwrite(fd, view[written:], written)
        return ShmRef(name=name, size=len(data))

    def _new(self, size: int) -> str:
        capacity = max(1 << 20, -(-size // (1 << 20)) * (1 << 20))
        while True:
            name = _new_name(self._pid)
            try:
                fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
            except FileExistsError:
                continue
            break
        try:
            os.posix_fallocate(fd, 0, capacity)
        except BaseException:
            os.close(fd)
            _posixshmem.shm_unlink("/" + name)
            raise
        self._fds[name] = (fd, capacity)
        return name

    def release(self, ref: ShmRef) -> None:
        """Give a segment back; unlinked when the pool already keeps enough."""
        if ref.name not in self._fds:
            self._owner.release(ref)
            return
        self._free.add(ref.name)
        while sum(self._fds[n][1] for n in self._free) > self.keep_bytes:
            self._drop(max(self._free, key=lambda n: self._fds[n][1]))

    def _drop(self, name: str) -> None:
        fd, _ = self._fds.pop(name)
        self._free.discard(name)
        os.close(fd)
        discard_spill(name)

    def close(self) -> None:
        """Unlink every segment, in use or not."""
        for name in list(self._fds):
            self._drop(name)
        self._owner.release_all()


def discard_spill(name: str) -> None:
    """Unlink a spilled message that was never sent; a missing one is fine."""
    try:
        _posixshmem.shm_unlink("/" + name)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


def sweep(is_alive: Callable[[int], bool] = psutil.pid_exists) -> list[str]:
    """Unlink the segments whose owner pid is dead; return their names.

    Works where segments are visible as files (Linux ``/dev/shm``); elsewhere
    (macOS) there is no way to list them and it returns ``[]``.
    """
    if not os.path.isdir(_SHM_DIR):
        return []
    removed: list[str] = []
    for entry in sorted(os.listdir(_SHM_DIR)):
        match = _NAME_RE.match(entry)
        if match is None or is_alive(int(match.group(1))):
            continue
        try:
            os.unlink(os.path.join(_SHM_DIR, entry))
        except (FileNotFoundError, PermissionError):
            continue
        removed.append(entry)
    return removed
