"""Where cached answers live: an LRU in memory, or SQLite (WAL) under the data dir.

Both are bounded by ``max_size`` entries, the least recently used going
first, and an entry older than ``ttl_seconds`` is never returned. Values are
opaque bytes (``cache.frames`` encodes them); keys are hex digests.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Protocol


class Store(Protocol):
    """What the response cache needs of a store (all calls are quick and sync)."""

    # The bounds, changed in place when the configuration is reloaded.
    max_size: int
    ttl: float

    def get(self, key: str) -> bytes | None:
        """The value of ``key`` when present and fresh."""
        ...

    def put(self, key: str, value: bytes) -> None:
        """Keep ``value`` under ``key``, evicting the least recently used beyond the bound."""
        ...

    def count(self) -> int:
        """How many fresh entries there are."""
        ...


class MemoryStore:
    """An LRU dict of (expiry, value)."""

    def __init__(self, max_size: int, ttl: float) -> None:
        self.max_size = max_size
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        """The value of ``key`` when present and fresh; it becomes the most recent."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, value: bytes) -> None:
        """Keep ``value`` under ``key``; the oldest entries go beyond ``max_size``."""
        self._entries[key] = (time.monotonic() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def count(self) -> int:
        """Entries that have not expired (expired ones are dropped here)."""
        now = time.monotonic()
        for key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]
        return len(self._entries)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS response_cache (
    key TEXT PRIMARY KEY,
    expires_at REAL NOT NULL,
    used_at REAL NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS response_cache_by_use ON response_cache (used_at);
"""


class SqliteStore:
    """Entries in one SQLite table; wall-clock expiry, so it holds across restarts."""

    def __init__(self, path: Path, max_size: int, ttl: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_size = max_size
        self.ttl = ttl
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        with self._lock:
            self._db.execute("DELETE FROM response_cache WHERE expires_at <= ?", (time.time(),))

    def get(self, key: str) -> bytes | None:
        """The value of ``key`` when present and fresh; its use time moves."""
        now = time.time()
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM response_cache WHERE key = ? AND expires_at > ?", (key, now)
            ).fetchone()
            if row is None:
                return None
            self._db.execute("UPDATE response_cache SET used_at = ? WHERE key = ?", (now, key))
        return bytes(row[0])

    def put(self, key: str, value: bytes) -> None:
        """Keep ``value`` under ``key``; expired and least recently used rows go."""
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO response_cache VALUES (?, ?, ?, ?)",
                (key, now + self.ttl, now, value),
            )
            self._db.execute("DELETE FROM response_cache WHERE expires_at <= ?", (now,))
            self._db.execute(
                "DELETE FROM response_cache WHERE key IN (SELECT key FROM response_cache "
                "ORDER BY used_at DESC LIMIT -1 OFFSET ?)",
                (self.max_size,),
            )

    def count(self) -> int:
        """Rows that have not expired."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM response_cache WHERE expires_at > ?", (time.time(),)
            ).fetchone()
        return int(row[0])
