"""The response cache: lookups for the text routes, its store, its metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge
from quart import Response, current_app

from bodega.registry.model import Model
from ipc.messages import Generate

from .config import CacheSection
from .key import cache_key, cacheable
from .sources import Choices, Recorder, Replay, decode_choices, encode_choices
from .store import MemoryStore, SqliteStore, Store

log = logging.getLogger("bodega")

T = TypeVar("T")
HEADER = "X-Bodega-Cache"
Outcome = Literal["hit", "miss", "bypass"]


@dataclass
class Lookup:
    """What a route generates with: the model itself, a replay (hit) or a
    recorder (miss), and the ``X-Bodega-Cache`` value (None: cache off)."""

    model: Model
    outcome: Outcome | None

    def mark(self, response: Response) -> Response:
        """``response`` with the header telling the client how the cache answered."""
        return marked(response, self.outcome)


def marked(response: Response, outcome: Outcome | None) -> Response:
    """``response`` with ``X-Bodega-Cache: outcome`` (none when the cache is off)."""
    if outcome is not None:
        response.headers[HEADER] = outcome
    return response


class CacheMetrics:
    """``bodega_response_cache_*``: hits and misses per model, entries kept."""

    def __init__(self, registry: CollectorRegistry, count: Callable[[], int]) -> None:
        self.hits = Counter(
            "bodega_response_cache_hits", "Requests answered from the response cache.",
            ("model",), registry=registry,
        )  # fmt: skip
        self.misses = Counter(
            "bodega_response_cache_misses",
            "Cacheable requests the response cache could not answer (the model ran).",
            ("model",), registry=registry,
        )  # fmt: skip
        self.entries = Gauge(
            "bodega_response_cache_entries", "Entries in the response cache.", registry=registry
        )
        self.entries.set_function(count)


class ResponseCache:
    """Cached answers of deterministic text requests (chat, legacy
    completions, Anthropic Messages, Responses)."""

    def __init__(self, data_dir: str, registry: CollectorRegistry | None) -> None:
        self.data_dir = data_dir
        self.config = CacheSection(enabled=False)
        self.store: Store | None = None
        self.metrics = CacheMetrics(registry, self._count) if registry is not None else None

    @classmethod
    def open(
        cls, config: CacheSection, data_dir: str, registry: CollectorRegistry | None
    ) -> ResponseCache:
        """The cache ``config`` describes; ``registry`` gets its metric families."""
        cache = cls(data_dir, registry)
        cache.configure(config)
        return cache

    def configure(self, config: CacheSection) -> None:
        """Apply ``config`` (at start and on SIGHUP): new bounds apply to the
        store in place; turning the cache on or off, or moving it between
        memory and disk, opens a new store (entries kept in memory are lost)."""
        store = self.store
        if (
            store is not None
            and config.enabled
            and config.persist_to_disk == self.config.persist_to_disk
        ):
            store.max_size, store.ttl = config.max_size, config.ttl_seconds
        elif not config.enabled:
            self.store = None
        elif config.persist_to_disk:
            path = Path(self.data_dir) / "response_cache.sqlite3"
            self.store = SqliteStore(path, config.max_size, config.ttl_seconds)
            log.info("response cache: %s (at most %d entries)", path, config.max_size)
        else:
            self.store = MemoryStore(config.max_size, config.ttl_seconds)
        self.config = config

    def _count(self) -> int:
        return self.store.count() if self.store is not None else 0

    async def lookup(self, model: Model, message: Generate, n: int) -> Lookup:
        """How to answer ``message``'s ``n`` choices on ``model``: from the
        cache, or from the model (recorded when the request is cacheable)."""
        if self.store is None:
            return Lookup(model, None)
        if not cacheable(message, n):
            return Lookup(model, "bypass")
        key = cache_key(model, message, n)
        store = self.store
        value = await self._run(store, store.get, key)
        choices = decode_choices(value) if value is not None else None
        if choices is not None and len(choices) == n:
            if self.metrics is not None:
                self.metrics.hits.labels(model.id).inc()
            # Duck-typed: services.text needs only ``id`` and ``stream``.
            return Lookup(cast(Model, Replay(model, message, choices)), "hit")
        if self.metrics is not None:
            self.metrics.misses.labels(model.id).inc()

        async def keep(answer: Choices) -> None:
            await self._run(store, store.put, key, encode_choices(answer))

        return Lookup(cast(Model, Recorder(model, message, n, keep)), "miss")

    @staticmethod
    async def _run(store: Store, function: Callable[..., T], *args: Any) -> T:
        # SQLite calls leave the event loop; the dict of the memory store does not.
        if isinstance(store, SqliteStore):
            return await trio.to_thread.run_sync(function, *args)
        return function(*args)


def response_cache() -> ResponseCache:
    """The app's response cache (``create_app`` opens it)."""
    return cast(ResponseCache, current_app.extensions["bodega.cache"])
