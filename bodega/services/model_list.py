"""``GET /v1/models``: the loaded models and the Hugging Face cache, as one list.

A loaded model is listed under its id, usable as ``model`` at once; every
repo in the cache under its repo id, with its size, completeness and what
could serve it. A model loaded from a cached repo under the repo id is one
entry. ``verify_with_hub`` checks each cached repo's files against the hub.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import trio
from huggingface_hub import HfApi

from bodega.hub.cache import CachedModel, list_cached
from bodega.hub.errors import hub_error
from bodega.openai.hub import ModelCard
from bodega.registry.model import Model
from bodega.registry.registry import Registry
from bodega.registry.sources import describe_cached

GB = 1e9
HUB_CHECKS_AT_ONCE = 8


def loaded_card(model: Model) -> ModelCard:
    """The entry of a registered model."""
    state = model.state()
    return ModelCard(
        id=model.id,
        object="model",
        created=state.created_at,
        owned_by=model.repo_id.split("/")[0] if model.repo_id else "bodega",
        loaded=True,
        status=state.status,
        type=model.spec.model_type,
        model_type=model.spec.model_type,
        engines=[state.engine],
        context_length=state.context_length,
        repo_id=model.repo_id,
    )


def cached_card(cached: CachedModel, loaded: list[Model]) -> ModelCard:
    """The entry of a cached repo; ``loaded`` are the models using its files."""
    sniffed = describe_cached(cached)
    first = loaded[0] if loaded else None
    card = loaded_card(first) if first is not None else _blank(cached.repo_id)
    card.id = cached.repo_id
    card.created = cached.created
    card.owned_by = cached.repo_id.split("/")[0]
    card.size_gb = round(cached.size_bytes / GB, 3)
    card.download_percentage = cached.download_percentage
    card.is_complete = cached.is_complete
    card.revision = cached.revision
    card.repo_id = None
    if first is None:
        card.status = "cached" if cached.is_complete else "incomplete"
        card.type = card.model_type = sniffed.model_type
        card.engines = sniffed.engines
    return card


def _blank(repo_id: str) -> ModelCard:
    return ModelCard(
        id=repo_id, object="model", created=0, owned_by="", loaded=False, status="cached"
    )


def uses_repo(model: Model, cached: CachedModel) -> bool:
    """Whether ``model`` was loaded from ``cached``'s files."""
    if model.repo_id == cached.repo_id:
        return True
    path = Path(model.handler_spec.model_path)
    return path.is_absolute() and path.is_relative_to(cached.repo_path)


def users_of(registry: Registry, cached: CachedModel) -> list[Model]:
    """The registered models whose files are ``cached``'s."""
    return [m for m in registry.models if uses_repo(m, cached)]


async def model_cards(registry: Registry, *, verify_with_hub: bool = False) -> list[ModelCard]:
    """Every loaded model and every cached repo, loaded ones first."""
    cached = await trio.to_thread.run_sync(list_cached)
    checks: list[str | None] = []
    if verify_with_hub:
        cached, checks = await _verified(cached)
    users = {c.repo_id: users_of(registry, c) for c in cached}
    taken = {m.id for models in users.values() for m in models if m.id == m.repo_id}
    cards = [loaded_card(m) for m in registry.models if m.id not in taken]
    for i, repo in enumerate(cached):
        card = cached_card(repo, [m for m in users[repo.repo_id] if m.id == repo.repo_id])
        if verify_with_hub:
            card.hub_verified = checks[i] is None
            card.hub_error = checks[i]
        cards.append(card)
    return cards


async def _verified(repos: list[CachedModel]) -> tuple[list[CachedModel], list[str | None]]:
    """``repos`` with the files they should hold taken from the hub, and per
    repo None or why the hub could not be asked."""
    limiter = trio.CapacityLimiter(HUB_CHECKS_AT_ONCE)
    results = list(repos)
    errors: list[str | None] = [None] * len(repos)

    async def check(i: int, repo: CachedModel) -> None:
        async with limiter:
            try:
                results[i] = await trio.to_thread.run_sync(verify, repo)
            except Exception as exc:
                errors[i] = hub_error(exc, repo.repo_id).message

    async with trio.open_nursery() as nursery:
        for i, repo in enumerate(repos):
            nursery.start_soon(check, i, repo)
    return results, errors


def verify(repo: CachedModel) -> CachedModel:
    """``repo`` with its planned files and sizes the hub's at its revision
    (limited to what a Bodega download planned, when it planned a subset)."""
    info = HfApi().model_info(repo.repo_id, revision=repo.revision, files_metadata=True)
    hub = {s.rfilename: s.lfs.size if s.lfs else (s.size or 0) for s in info.siblings or []}
    wanted = set(repo.planned) if repo.planned is not None else set(hub)
    return msgspec.structs.replace(repo, planned={n: s for n, s in hub.items() if n in wanted})
