"""SIGHUP: load ``config.yaml`` again and make the running models match its
``models:``: added ones load, removed ones unload, changed ones reload.
A changed model is reloaded in place: requests running on it finish first
(up to ``server.graceful_timeout``), queued ones wait for the new handler.
Models loaded through the API are left alone. ``tiers:``, ``orchestration:``,
``cache:`` and ``catalog:`` are taken as they now are (``apply_sections``);
the rest of the file (``server:`` and such) needs a restart. A file that does
not parse keeps everything as it runs, and the log says why."""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec
from quart import Quart

from bodega.app import serve_settings
from bodega.cache.cache import ResponseCache
from bodega.errors import BodegaError
from bodega.registry.registry import Registry
from bodega.reloadable import reloadable_sections
from bodega.settings import ConfigError, ConfigFile, ModelSpec, Settings, load_config_file

log = logging.getLogger("bodega")


class ConfigReloader:
    """Tracks which models the config file owns."""

    def __init__(self, path: str, models: list[ModelSpec]) -> None:
        self.path = path
        self.owned = {spec.id: spec for spec in models}
        # Set once the app exists: takes the reloaded file's other sections.
        self.on_reload: Callable[[ConfigFile], None] | None = None

    async def reload(self, registry: Registry) -> None:
        """Apply the file's models; failures are logged, the rest still applied."""
        try:
            config = load_config_file(self.path)
        except ConfigError as exc:
            log.error("SIGHUP: keeping the running configuration: %s", exc)
            return
        if self.on_reload is not None:
            self.on_reload(config)
        wanted = {spec.id: spec for spec in config.models}
        loaded = {m.id for m in registry.models}
        for model_id, old in list(self.owned.items()):
            spec = wanted.get(model_id)
            if spec is None:
                del self.owned[model_id]
                if model_id in loaded:
                    log.info("SIGHUP: unloading %s (removed)", model_id)
                    await registry.unload(model_id)
            elif spec != old and model_id in loaded:
                # Running requests finish on the old handler, queued ones wait.
                log.info("SIGHUP: reloading %s (changed)", model_id)
                self.owned[model_id] = spec
                try:
                    await registry.reload(spec, drain_timeout=config.server.graceful_timeout)
                except BodegaError as exc:
                    log.error("SIGHUP: %s did not reload: %s", model_id, exc.message)
        for model_id, spec in wanted.items():
            if model_id in {m.id for m in registry.models}:
                continue
            try:
                log.info("SIGHUP: loading %s", model_id)
                await registry.load(spec)
                self.owned[model_id] = spec
            except BodegaError as exc:
                log.error("SIGHUP: %s did not load: %s", model_id, exc.message)


def apply_sections(app: Quart, path: str, config: ConfigFile) -> None:
    """Serve ``config``'s tiers, orchestration roles, response cache settings
    and catalog from now on (with their environment variables applied as at
    start); an invalid one keeps what runs."""
    try:
        sections = reloadable_sections(config, path)
    except ValueError as exc:
        log.error("SIGHUP: keeping tiers, orchestration, cache and catalog: %s", exc)
        return
    settings: Settings = app.extensions["bodega.settings"]
    serve_settings(
        app,
        msgspec.structs.replace(
            settings,
            tiers=config.tiers,
            orchestration=sections.orchestration,
            cache=sections.cache,
            catalog=sections.catalog,
        ),
    )
    response_cache: ResponseCache = app.extensions["bodega.cache"]
    response_cache.configure(sections.cache)
