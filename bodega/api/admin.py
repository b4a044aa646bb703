"""Model management: load, unload, list loaded models with memory."""

from __future__ import annotations

from typing import Any

import trio
from quart import Blueprint, Response

from bodega.registry.registry import Model
from bodega.settings import ModelSpec
from ipc.messages import EngineMemory

from .common import decode_json, json_response, registry

blueprint = Blueprint("admin", __name__)

MB = 1024 * 1024


def describe(model: Model) -> dict[str, Any]:
    """The registry's view of one model (no IPC)."""
    handler = model.handler
    info: dict[str, Any] = {
        "id": model.id,
        "type": model.spec.model_type,
        "model_path": model.spec.model_path,
        "engine": handler.engine or model.spec.engine,
        "context_length": handler.context_length,
        "max_concurrency": model.spec.max_concurrency,
        "created_at": handler.created_at,
        "status": handler.status,
        "pid": handler.pid,
    }
    if handler.error:
        info["error"] = handler.error
    return info


def memory_of(model: Model) -> dict[str, float]:
    """``memory`` in the Bodega docs' shape, from the last ``Stats``."""
    stats = model.handler.last_stats
    rss_mb = round(stats.rss_bytes / MB, 1) if stats else 0.0
    engine = stats.memory if stats else EngineMemory()
    active = round(engine.active_bytes / MB, 1)
    return {
        "metal_active_mb": active,
        "metal_cache_mb": round(engine.cache_bytes / MB, 1),
        "metal_peak_mb": round(engine.peak_bytes / MB, 1),
        "rss_mb": rss_mb,
        "total_mb": round(rss_mb + active, 1),
    }


async def refresh_stats(models: list[Model]) -> None:
    """Ask every running handler for fresh stats, in parallel."""
    async with trio.open_nursery() as nursery:
        for model in models:
            nursery.start_soon(model.handler.fetch_stats)


@blueprint.post("/v1/admin/load-model")
async def load_model() -> Response:
    """Spawn a handler for the model and wait until it is ready."""
    spec = await decode_json(ModelSpec)
    model = await registry().load(spec)
    return json_response({"status": "loaded", "model": describe(model)}, status=201)


@blueprint.delete("/v1/admin/unload-model/<path:model_id>")
async def unload_model(model_id: str) -> Response:
    """Stop the model's handler and free its memory."""
    model = await registry().unload(model_id)
    return json_response({"status": "unloaded", "id": model.id})


@blueprint.get("/v1/admin/loaded-models")
async def loaded_models() -> Response:
    """Every registered model with status, pid and memory."""
    models = registry().models
    await refresh_stats(models)
    data = [
        {
            **describe(m),
            "memory": memory_of(m),
            "tokens_generated": m.handler.last_stats.tokens_generated
            if m.handler.last_stats
            else 0,
        }
        for m in models
    ]
    return json_response({"object": "list", "data": data, "total": len(data)})
