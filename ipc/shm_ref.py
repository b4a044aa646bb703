"""The reference to a payload in shared memory (its own module so that every
message module can use it)."""

from __future__ import annotations

import msgspec


class ShmRef(msgspec.Struct, frozen=True, tag="shm"):
    """A payload that lives in a shared-memory segment instead of the frame."""

    name: str
    size: int
