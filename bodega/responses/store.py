"""Stored responses: SQLite in WAL mode under the data dir, bounded in count and age.

A response is written once it ends (a background one also when it is
queued), with the conversation that went into it, so that
``previous_response_id`` continues from one row even after older rows are
evicted. Every write commits: the store survives a restart and a kill -9.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import msgspec
import trio

from bodega.errors import BodegaError

from .config import ResponsesSection
from .types import Item, Response, ResponseError

UNFINISHED = ("queued", "in_progress")


class ResponseNotFound(BodegaError):
    """No stored response has that id."""

    status = 404
    type = "invalid_request_error"
    code = "not_found"


class Stored(msgspec.Struct):
    """A stored response and the conversation items that went into it."""

    response: Response
    input_items: list[Item]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    status TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_by_age ON responses (created_at);
"""


class ResponseStore:
    """The stored responses; every call runs its SQL in a worker thread."""

    def __init__(self, path: Path, config: ResponsesSection) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.config = config
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(Stored)
        self._fail_unfinished()

    def _fail_unfinished(self) -> None:
        """Responses that were running when the server stopped can never end: fail them."""
        rows = self._db.execute(
            f"SELECT body FROM responses WHERE status IN {UNFINISHED!r}"
        ).fetchall()
        for (body,) in rows:
            stored = self._decoder.decode(body)
            stored.response.status = "failed"
            stored.response.error = ResponseError(
                code="server_error", message="The server stopped before it finished."
            )
            self._put(stored)

    def _put(self, stored: Stored) -> None:
        now = time.time()
        response = stored.response
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (id, created_at, expires_at, status, body) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    response.id,
                    response.created_at,
                    now + self.config.ttl,
                    response.status,
                    self._encoder.encode(stored),
                ),
            )
            self._db.execute("DELETE FROM responses WHERE expires_at < ?", (now,))
            self._db.execute(
                "DELETE FROM responses WHERE id IN (SELECT id FROM responses "
                "ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?)",
                (self.config.max_stored,),
            )

    def _get(self, response_id: str) -> Stored | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM responses WHERE id = ? AND expires_at >= ?",
                (response_id, time.time()),
            ).fetchone()
        return None if row is None else self._decoder.decode(row[0])

    def _delete(self, response_id: str) -> bool:
        with self._lock:
            cursor = self._db.execute("DELETE FROM responses WHERE id = ?", (response_id,))
        return cursor.rowcount > 0

    async def put(self, response: Response, input_items: list[Item]) -> None:
        """Store (or replace) ``response`` with the conversation that went into it."""
        await trio.to_thread.run_sync(self._put, Stored(response, input_items))

    async def get(self, response_id: str) -> Stored:
        """The stored response ``response_id``, or a 404."""
        stored = await trio.to_thread.run_sync(self._get, response_id)
        if stored is None:
            raise ResponseNotFound(
                f"No stored response has the id {response_id!r}.", param="response_id"
            )
        return stored

    async def delete(self, response_id: str) -> None:
        """Forget ``response_id``; a 404 when it is not stored."""
        if not await trio.to_thread.run_sync(self._delete, response_id):
            raise ResponseNotFound(
                f"No stored response has the id {response_id!r}.", param="response_id"
            )

    def close(self) -> None:
        """Close the database."""
        self._db.close()
