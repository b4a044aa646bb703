"""The response cache's parts in process: which requests are cacheable, what
changes a key, and the two stores' bounds and expiry."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest

from bodega.cache.config import CacheSection, cache_with_env
from bodega.cache.key import cache_key, cacheable
from bodega.cache.store import MemoryStore, SqliteStore
from bodega.registry.model import Model
from bodega.settings import ModelSpec
from ipc.messages import ChatMessage, Generate, Sampling


def message(**sampling: object) -> Generate:
    return Generate(
        req_id=3,
        messages=[ChatMessage(role="user", content="hi")],
        sampling=Sampling(**sampling),  # type: ignore[arg-type]
        request_id="abc",
    )


def test_only_reproducible_requests_are_cacheable() -> None:
    assert cacheable(message(temperature=0), 1)
    assert cacheable(message(temperature=0), 3)
    assert cacheable(message(temperature=0.8, seed=1), 1)
    assert not cacheable(message(temperature=0.8), 1)
    assert not cacheable(message(temperature=0.8, seed=1), 2)


def model(path: Path, **options: object) -> Model:
    spec = ModelSpec(model_path=str(path), model_id="m", **options)  # type: ignore[arg-type]
    return Model(spec, lambda: path / "sock", "llamacpp", 10)


def test_keys_cover_the_request_and_the_model(tmp_path: Path) -> None:
    weights = tmp_path / "m.gguf"
    weights.write_bytes(b"gguf")
    base = model(weights)
    key = cache_key(base, message(temperature=0), 1)
    renumbered = msgspec.structs.replace(message(temperature=0), req_id=9, request_id="x")
    assert cache_key(base, renumbered, 1) == key  # per-request ids do not count
    assert cache_key(base, message(temperature=0), 2) != key
    assert cache_key(base, message(temperature=0, top_p=0.5), 1) != key
    assert cache_key(model(weights, context_length=1024), message(temperature=0), 1) != key
    assert cache_key(model(weights, keep_alive=5), message(temperature=0), 1) == key
    weights.write_bytes(b"other weights")
    assert cache_key(base, message(temperature=0), 1) != key  # the file changed


def test_memory_store_is_lru_and_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore(max_size=2, ttl=10)
    store.put("a", b"1")
    store.put("b", b"2")
    assert store.get("a") == b"1"  # a is now the most recent
    store.put("c", b"3")
    assert (store.get("a"), store.get("b"), store.get("c")) == (b"1", None, b"3")
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 11)
    assert store.get("a") is None
    assert store.count() == 0


def test_sqlite_store_persists_bounds_and_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cache.sqlite3"
    store = SqliteStore(path, max_size=2, ttl=10)
    store.put("a", b"1")
    store.put("b", b"2")
    assert store.get("a") == b"1"
    store.put("c", b"3")
    reopened = SqliteStore(path, max_size=2, ttl=10)
    assert (reopened.get("a"), reopened.get("b"), reopened.get("c")) == (b"1", None, b"3")
    assert reopened.count() == 2
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 11)
    assert reopened.get("a") is None
    assert reopened.count() == 0


def test_environment_overrides() -> None:
    section = cache_with_env(CacheSection(), {"ENABLE_CACHE": "true", "CACHE_PERSIST_TO_DISK": "1"})
    assert section.enabled and section.persist_to_disk and section.max_size == 1000
    with pytest.raises(ValueError, match="CACHE_TTL_SECONDS"):
        cache_with_env(CacheSection(), {"CACHE_TTL_SECONDS": "-1"})
