"""Large results a handler sends through shared memory.

The handler creates the segment (named with the server's pid, so the
server's start-up sweep covers a handler that died), the server reads it and
answers ``ReleaseShm``, and the handler unlinks it. A segment the server never
acknowledges (its request was dropped) is unlinked after ``UNCLAIMED_SECONDS``.
"""

from __future__ import annotations

import os
import threading
import time

from ipc import shm
from ipc.messages import ShmRef

UNCLAIMED_SECONDS = 120.0

_lock = threading.Lock()
_owner: shm.ShmOwner | None = None
_created_at: dict[str, float] = {}


def _get_owner() -> shm.ShmOwner:
    global _owner
    if _owner is None:
        _owner = shm.ShmOwner(owner_pid=os.getppid())
    return _owner


def offload(data: bytes, threshold: int = shm.THRESHOLD) -> bytes | ShmRef:
    """``data`` inline when small, else in a new segment awaiting ``release``."""
    if len(data) < threshold:
        return data
    with _lock:
        owner = _get_owner()
        now = time.monotonic()
        for name, created in list(_created_at.items()):
            if now - created > UNCLAIMED_SECONDS:
                owner.release(name)
                del _created_at[name]
        ref = owner.create(data)
        _created_at[ref.name] = now
        return ref


def release(name: str) -> None:
    """Unlink a segment the server has read; unknown names are ignored."""
    with _lock:
        if _owner is not None and _created_at.pop(name, None) is not None:
            _owner.release(name)


def release_all() -> None:
    """Unlink every segment still held (the handler is leaving)."""
    with _lock:
        if _owner is not None:
            _owner.release_all()
        _created_at.clear()


def pending() -> int:
    """How many segments wait for the server to read them."""
    with _lock:
        return len(_created_at)
