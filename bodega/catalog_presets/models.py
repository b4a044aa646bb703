"""Catalog entries as ModelSpecs, role names as models, and the
``roles`` / ``memory_mb`` of ``GET /v1/models``."""

from __future__ import annotations

import logging

import trio

from bodega.catalog_presets.config import Catalog, CatalogEntry
from bodega.openai.hub import ModelCard
from bodega.registry.memory import estimate_mb
from bodega.registry.registry import Registry
from bodega.settings import ModelSpec
from catalog.engines import NoEngine, resolve_engine

log = logging.getLogger("bodega")


def entry_spec(entry: CatalogEntry) -> ModelSpec:
    """The ModelSpec a catalog entry loads with: ``file`` → ``model_path``,
    ``ctx`` → ``context_length``, ``gpu_layers`` → ``n_gpu_layers``."""
    return ModelSpec(
        model_path=entry.file,
        model_id=entry.id,
        model_type=entry.model_type,
        context_length=entry.ctx,
        n_gpu_layers=entry.gpu_layers,
    )


def preset_specs(catalog: Catalog | None, skip: set[str]) -> list[ModelSpec]:
    """The models of the default preset, less those in ``skip`` (ids the
    config already loads)."""
    if catalog is None or catalog.default_preset is None:
        return []
    ids = catalog.presets[catalog.default_preset]
    log.info("preset %s: loading %s", catalog.default_preset, ", ".join(ids))
    return [entry_spec(catalog.entries[i]) for i in ids if i not in skip]


# The inventory's task types that are not role names themselves.
TASK_ROLES = {"code": "coder", "coding": "coder", "reasoning": "thinker", "chat": "primary"}
AUTO = "auto"


def routed_model(model: str, task_type: str | None) -> str:
    """The name a chat request is resolved by: ``model``, or with ``model``
    "auto" and a ``task_type``, the role that task type asks for."""
    if model != AUTO or task_type is None:
        return model
    return TASK_ROLES.get(task_type, task_type)


class RoleResolver:
    """Maps a request's ``model`` that no loaded model has to a catalog
    model: a catalog id loads that model, a role name the first loaded model
    with the role, else the first catalog model with it (loaded now, when
    ``load_on_demand`` allows). One load at a time."""

    def __init__(self, registry: Registry, catalog: Catalog) -> None:
        self._registry = registry
        self._catalog = catalog
        self._lock = trio.Lock()

    def with_role(self, role: str) -> list[CatalogEntry]:
        """Catalog entries that play ``role``, in catalog order."""
        return [e for e in self._catalog.entries.values() if role in e.roles]

    async def __call__(self, name: str) -> str | None:
        """The model id ``name`` stands for, or None when it is no catalog name."""
        entries = self._catalog.entries
        candidates = [entries[name]] if name in entries else self.with_role(name)
        if not candidates:
            return None
        loaded = {m.id for m in self._registry.models}
        for entry in candidates:
            if entry.id in loaded:
                return entry.id
        if not self._registry.load_on_demand:
            return candidates[0].id  # not loaded: the registry says so by name
        async with self._lock:
            if candidates[0].id not in {m.id for m in self._registry.models}:
                log.info("loading catalog model %s for %r", candidates[0].id, name)
                await self._registry.load(entry_spec(candidates[0]))
        return candidates[0].id


def _estimate(entry: CatalogEntry) -> int | None:
    spec = entry_spec(entry)
    try:
        engine = resolve_engine(spec.model_type, spec.engine, spec.model_path)
    except NoEngine:
        return None
    return estimate_mb(spec, spec.model_path, engine)


async def annotate_cards(
    cards: list[ModelCard], catalog: Catalog | None, registry: Registry
) -> list[ModelCard]:
    """``cards`` with ``roles`` and ``memory_mb`` on catalog models, plus an
    ``available`` card for each catalog model not loaded."""
    if catalog is None:
        return cards
    models = {m.id: m for m in registry.models}
    by_id = {c.id: c for c in cards}
    for entry in catalog.entries.values():
        card = by_id.get(entry.id)
        if card is None:
            card = ModelCard(
                id=entry.id, object="model", created=0, owned_by="catalog", loaded=False,
                status="available", type=entry.model_type, model_type=entry.model_type,
                context_length=entry.ctx,
            )  # fmt: skip
            card.memory_mb = await trio.to_thread.run_sync(_estimate, entry)
            cards.append(card)
        else:
            model = models.get(entry.id)
            card.memory_mb = model.footprint_mb if model is not None else None
        card.roles = list(entry.roles)
    return cards
