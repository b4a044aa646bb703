"""Where a model's files come from: a local path, or a repo in the HF cache.

A ``model_path`` that is a Hugging Face repo id (``owner/name``) is resolved
to its cache snapshot (for a GGUF repo: the file ``filename``/``quant``
picks) for every engine, so handlers only ever see local paths. A repo the
cache lacks is downloaded first when ``auto_download`` allows it; otherwise
the load is a 404 naming the download endpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio

from bodega.errors import ModelNotFound
from bodega.hub.cache import CachedModel, find_cached
from bodega.hub.plan import Selection, choose_gguf, local_path
from bodega.settings import ModelSpec
from catalog.files import looks_like_repo_id
from catalog.sniff import Sniffed, gguf_models, sniff


def repo_id_of(spec: ModelSpec) -> str | None:
    """The hub repo ``spec`` names, or None for a local path."""
    path = spec.model_path
    return path if looks_like_repo_id(path) else None


def selection_of(spec: ModelSpec) -> Selection:
    """The files of the repo this model needs."""
    return Selection(revision=spec.revision, filename=spec.filename, quant=spec.quant)


def cached_path(spec: ModelSpec, repo_id: str) -> Path | None:
    """The local path of a complete cached copy of what ``spec`` needs, or None."""
    cached = find_cached(repo_id, spec.revision)
    if cached is None or not cached.is_complete or cached.snapshot is None:
        return None
    models = gguf_models(cached.files)
    if not models:
        return Path(cached.snapshot)
    chosen = choose_gguf(repo_id, models, selection_of(spec))
    return local_path(cached.snapshot, chosen[0])


def missing(repo_id: str) -> ModelNotFound:
    """The 404 of a repo that is not cached and may not be downloaded."""
    return ModelNotFound(
        f"model_path {repo_id!r} is not in the local Hugging Face cache; download it with "
        'POST /v1/admin/download-model (or load it with "auto_download": true)',
        param="model_path",
    )


def describe_cached(cached: CachedModel) -> Sniffed:
    """The model_type and engines of a cached repo, from its files and config."""
    config: dict[str, Any] | None = None
    if cached.snapshot is not None and "config.json" in cached.files:
        try:
            config = json.loads((Path(cached.snapshot) / "config.json").read_text())
        except (OSError, ValueError):
            config = None
    return sniff(cached.files, config if isinstance(config, dict) else None)


async def on_demand_spec(repo_id: str) -> ModelSpec | None:
    """The spec that loads a complete cached repo a request names, or None."""
    cached = await trio.to_thread.run_sync(find_cached, repo_id)
    if cached is None or not cached.is_complete:
        return None
    sniffed = describe_cached(cached)
    if sniffed.model_type is None:
        return None
    return ModelSpec(model_path=repo_id, model_id=repo_id, model_type=sniffed.model_type)  # type: ignore[arg-type]
