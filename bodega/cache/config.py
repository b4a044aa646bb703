"""The ``cache:`` section of ``config.yaml`` and the LLM Service's environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import msgspec
from msgspec import Meta

from bodega.env_overrides import overridden, variable


class CacheSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The ``cache:`` section: the response cache of chat and legacy completions."""

    enabled: bool = False
    # Entries kept (least recently used go first), each at most ttl_seconds old.
    max_size: Annotated[int, Meta(ge=1)] = 1000
    ttl_seconds: Annotated[float, Meta(gt=0)] = 3600.0
    # SQLite under the data dir instead of memory: entries survive a restart.
    persist_to_disk: bool = False


# The LLM Service docs' names: environment variable -> key.
ENV_KEYS: dict[str, str] = {
    "ENABLE_CACHE": "enabled",
    "CACHE_MAX_SIZE": "max_size",
    "CACHE_TTL_SECONDS": "ttl_seconds",
    "CACHE_PERSIST_TO_DISK": "persist_to_disk",
}


def cache_with_env(section: CacheSection, environ: Mapping[str, str]) -> CacheSection:
    """``section`` with ``ENABLE_CACHE`` / ``CACHE_*`` from ``environ`` applied on top.

    Raises ``ValueError`` naming the variable when a value does not validate.
    """
    return overridden(
        section,
        (
            (variable(name), (key,), environ[name].strip())
            for name, key in ENV_KEYS.items()
            if name in environ
        ),
    )
