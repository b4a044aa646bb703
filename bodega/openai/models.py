"""Wire types of the model-management, model-list and health answers."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from bodega.registry.admission import QueueStats
from bodega.settings import GenerationDefaults


class LlamaCppBuffers(msgspec.Struct):
    """llama.cpp's own buffers over all devices, in MB (its load log)."""

    model_mb: float
    kv_cache_mb: float
    compute_mb: float


class ModelMemory(msgspec.Struct):
    """``memory`` in the Bodega docs' shape, in MB."""

    metal_active_mb: float = 0.0
    metal_cache_mb: float = 0.0
    metal_peak_mb: float = 0.0
    rss_mb: float = 0.0
    total_mb: float = 0.0
    # What the server estimated before loading (weights, KV cache, runtime).
    estimated_mb: int = 0
    # llama.cpp models: its buffers, beside the estimate (None elsewhere).
    llamacpp_buffers: LlamaCppBuffers | None = None


class LoadedModel(msgspec.Struct, omit_defaults=True):
    """One model in ``load-model`` and ``loaded-models`` answers."""

    id: str
    type: str
    model_path: str
    engine: str
    context_length: int | None
    max_concurrency: int
    created_at: int
    status: str
    pid: int | None
    restarts: int
    last_exit_code: int | None
    last_restart_at: int | None
    error: str | None = None
    # While downloading: percent of its files in the cache.
    progress: float | None = None
    repo_id: str | None = None
    # How long the warm-up request took, once loaded.
    warmup_ms: float | None = None
    # When keep_alive unloads the idle model (Unix time); absent: never.
    expires_at: int | None = None
    memory: ModelMemory | None = None
    tokens_generated: int | None = None
    # Sampling defaults for requests that leave the fields out.
    defaults: GenerationDefaults | None = None
    # llama.cpp's load knobs, as set (absent: llama.cpp's own choice).
    n_batch: int | None = None
    n_gpu_layers: int | None = None
    use_mmap: bool | None = None
    use_mlock: bool | None = None
    # The LoRA adapters applied (and their scales), as loaded.
    lora_paths: list[str] | None = None
    lora_scales: list[float] | None = None


class LoadedModels(msgspec.Struct):
    """``GET /v1/admin/loaded-models``."""

    data: list[LoadedModel]
    total: int
    object: str = "list"


class LoadAnswer(msgspec.Struct):
    """``POST /v1/admin/load-model``."""

    model: LoadedModel
    status: str = "loaded"


class UnloadAnswer(msgspec.Struct):
    """``DELETE /v1/admin/unload-model/{id}``."""

    id: str
    status: str = "unloaded"


T = TypeVar("T")


class ObjectList(msgspec.Struct, Generic[T]):
    """OpenAI's list envelope, ``{"object": "list", "data": [...]}``."""

    data: list[T]
    object: str = "list"


class HealthDetail(msgspec.Struct, omit_defaults=True):
    """One model in ``/health``."""

    id: str
    type: str
    status: str
    ram_usage_mb: float
    restarts: int
    last_exit_code: int | None
    last_restart_at: int | None
    progress: float | None = None


class Health(msgspec.Struct, omit_defaults=True):
    """``GET /health``."""

    status: str
    model_id: str | None
    model_status: str
    models_detail: list[HealthDetail] | None = None
    # The LLM Service docs' field: when this answer was made (ISO 8601, UTC).
    timestamp: str | None = None


class Readiness(msgspec.Struct, omit_defaults=True):
    """``GET /health/ready``."""

    status: str
    loaded_models: list[str]
    reason: str | None = None


class QueueSummary(msgspec.Struct):
    """``queue_stats`` of ``GET /v1/queue/stats``."""

    queue_size: int
    active_requests: int
    models: dict[str, QueueStats]


class QueueStatsAnswer(msgspec.Struct):
    """``GET /v1/queue/stats``."""

    queue_stats: QueueSummary
