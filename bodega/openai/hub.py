"""Wire types of the model list, downloads and cache deletion."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta


class ModelCard(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One entry of ``GET /v1/models``: a loaded model, a cached repo, or both.

    OpenAI's fields first (``id``, ``object``, ``created``, ``owned_by``),
    then the Bodega docs' cache fields and what can serve it.
    """

    id: str
    created: int
    owned_by: str
    loaded: bool
    status: str
    object: Literal["model"]
    # The loaded model's type, else the one its files look like.
    type: str | None = None
    model_type: str | None = None
    engines: list[str] = []
    context_length: int | None = None
    size_gb: float | None = None
    download_percentage: float | None = None
    is_complete: bool | None = None
    revision: str | None = None
    # The cached repo a loaded model's files come from.
    repo_id: str | None = None
    # verify_with_hub: whether the check ran, and why not when it could not.
    hub_verified: bool | None = None
    hub_error: str | None = None
    # Catalog models (inference-service): their roles and memory (the
    # registry's estimate, or the measured footprint once loaded).
    roles: list[str] | None = None
    memory_mb: int | None = None
    # The LLM Service docs' tiers (``tiers:`` in config.yaml) mapped to the model.
    tiers: list[str] | None = None


class ModelCards(msgspec.Struct):
    """``GET /v1/models``."""

    data: list[ModelCard]
    object: str = "list"


class DownloadRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST /v1/admin/download-model`` and ``download-model-stream``."""

    model_path: Annotated[str, Meta(min_length=3, max_length=200)]
    revision: str | None = None
    allow_patterns: list[str] | None = None
    ignore_patterns: list[str] | None = None
    # A GGUF repo with many quantizations: the exact file, or a quantization.
    filename: str | None = None
    quant: str | None = None


class DownloadAnswer(msgspec.Struct, kw_only=True):
    """``POST /v1/admin/download-model`` once the files are in the cache."""

    model_path: str
    revision: str
    local_path: str
    files: list[str]
    size_bytes: int
    downloaded_files: int
    elapsed_s: float
    status: str = "completed"


class DeletedModel(msgspec.Struct):
    """``DELETE /v1/models/{model_id}``."""

    id: str
    object: str = "model"
    deleted: bool = True
