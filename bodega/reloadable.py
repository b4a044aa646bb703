"""The config sections SIGHUP re-reads (response cache, catalog, orchestration
roles), read with their environment variables the same way at start
(``settings.build_settings``) and on reload (``daemon.reload.apply_sections``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NamedTuple

from bodega.cache.config import CacheSection, cache_with_env
from bodega.catalog_presets.config import Catalog, catalog_from
from bodega.orchestration.config import OrchestrationSection, orchestration_with_env

if TYPE_CHECKING:
    from bodega.settings import ConfigFile


class ReloadableSections(NamedTuple):
    """The sections, environment applied."""

    cache: CacheSection
    catalog: Catalog | None
    orchestration: OrchestrationSection


def reloadable_sections(config: ConfigFile, config_path: str | None) -> ReloadableSections:
    """``config``'s reloadable sections with the environment applied on top;
    ``ValueError`` naming the variable or key that does not validate."""
    return ReloadableSections(
        cache=cache_with_env(config.cache, os.environ),
        catalog=catalog_from(config.catalog, os.environ, config_path),
        orchestration=orchestration_with_env(config.orchestration, os.environ),
    )
