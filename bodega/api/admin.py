"""Model management: load, unload, list loaded models with memory."""

from __future__ import annotations

import time

import msgspec
import trio
from quart import Blueprint, Response

from bodega.openai.models import (
    LlamaCppBuffers,
    LoadAnswer,
    LoadedModel,
    LoadedModels,
    ModelMemory,
    UnloadAnswer,
)
from bodega.registry.model import Model, ModelState
from bodega.settings import LoadRequest, ModelSpec
from ipc.messages import EngineMemory

from .common import decode_json, json_response, registry

blueprint = Blueprint("admin", __name__)

MB = 1024 * 1024


def describe(model: Model, state: ModelState | None = None) -> LoadedModel:
    """The registry's view of one model (no IPC), from a snapshot of its state."""
    state = state or model.state()
    return LoadedModel(
        id=model.id,
        type=model.spec.model_type,
        model_path=model.spec.model_path,
        engine=state.engine,
        context_length=state.context_length,
        max_concurrency=model.spec.max_concurrency,
        created_at=state.created_at,
        status=state.status,
        pid=state.pid,
        restarts=state.restarts,
        last_exit_code=state.last_exit_code,
        last_restart_at=state.last_restart_at,
        error=state.error,
        progress=state.progress,
        repo_id=model.repo_id,
        warmup_ms=round(model.warmup_seconds * 1000, 1) if model.warmup_seconds else None,
        expires_at=_expires_at(model),
        defaults=model.spec.defaults,
        n_batch=model.spec.n_batch,
        n_gpu_layers=model.spec.n_gpu_layers,
        use_mmap=model.spec.use_mmap,
        use_mlock=model.spec.use_mlock,
        lora_paths=model.spec.lora_paths,
        lora_scales=model.spec.lora_scales,
    )


def _expires_at(model: Model) -> int | None:
    """When ``keep_alive`` will unload the model, as a Unix time (None: never)."""
    left = model.expires_in(time.monotonic())
    return None if left is None else int(time.time() + max(0.0, left))


def memory_of(model: Model) -> ModelMemory:
    """``memory`` in the Bodega docs' shape, from the last ``Stats``."""
    stats = model.handler.last_stats
    rss_mb = round(stats.rss_bytes / MB, 1) if stats else 0.0
    engine = stats.memory if stats else EngineMemory()
    active = round(engine.active_bytes / MB, 1)
    return ModelMemory(
        metal_active_mb=active,
        metal_cache_mb=round(engine.cache_bytes / MB, 1),
        metal_peak_mb=round(engine.peak_bytes / MB, 1),
        rss_mb=rss_mb,
        total_mb=round(rss_mb + active, 1),
        estimated_mb=model.estimated_mb,
        llamacpp_buffers=LlamaCppBuffers(
            model_mb=round(engine.model_buffer_bytes / MB, 1),
            kv_cache_mb=round(engine.kv_cache_bytes / MB, 1),
            compute_mb=round(engine.compute_buffer_bytes / MB, 1),
        )
        if engine.model_buffer_bytes
        else None,
    )


async def refresh_stats(models: list[Model]) -> None:
    """Ask every running handler for fresh stats, in parallel."""
    async with trio.open_nursery() as nursery:
        for model in models:
            nursery.start_soon(model.handler.fetch_stats)


@blueprint.post("/v1/admin/load-model")
async def load_model() -> Response:
    """Spawn a handler for the model and wait until it is ready; with
    ``"wait": false`` answer 202 at once (the model is ``downloading`` or
    ``loading``, then ``running`` or ``failed``)."""
    body = await decode_json(LoadRequest)
    fields = msgspec.structs.asdict(body)
    wait = fields.pop("wait")
    model = await registry().load(ModelSpec(**fields), wait=wait)
    if not wait:
        return json_response(LoadAnswer(model=describe(model), status="accepted"), status=202)
    return json_response(LoadAnswer(model=describe(model)), status=201)


@blueprint.delete("/v1/admin/unload-model/<path:model_id>")
async def unload_model(model_id: str) -> Response:
    """Stop the model's handler and free its memory."""
    model = await registry().unload(model_id)
    return json_response(UnloadAnswer(id=model.id))


@blueprint.get("/v1/admin/loaded-models")
async def loaded_models() -> Response:
    """Every registered model with status, pid and memory."""
    models = registry().models
    await refresh_stats(models)
    data = []
    for m in models:
        info = describe(m)
        info.memory = memory_of(m)
        stats = m.handler.last_stats
        info.tokens_generated = stats.tokens_generated if stats else 0
        data.append(info)
    return json_response(LoadedModels(data=data, total=len(data)))
