"""Health, the OpenAI model list and queue statistics."""

from __future__ import annotations

from quart import Blueprint, Response

from .admin import memory_of, refresh_stats
from .common import json_response, registry

blueprint = Blueprint("status", __name__)


@blueprint.get("/health")
async def health() -> Response:
    """``ok`` with per-model detail, or ``unhealthy``/503 when nothing runs."""
    models = registry().models
    running = [m for m in models if m.handler.status == "running"]
    if not running:
        return json_response(
            {
                "status": "unhealthy",
                "model_id": None,
                "model_status": "no_models" if not models else "no_running_models",
            },
            status=503,
        )
    await refresh_stats(running)
    return json_response(
        {
            "status": "ok",
            "model_id": ", ".join(m.id for m in models),
            "model_status": f"initialized ({len(models)} model(s))",
            "models_detail": [
                {
                    "id": m.id,
                    "type": m.spec.model_type,
                    "status": m.handler.status,
                    "ram_usage_mb": memory_of(m)["total_mb"],
                }
                for m in models
            ],
        }
    )


@blueprint.get("/v1/models")
async def list_models() -> Response:
    """Loaded models in the OpenAI list shape."""
    data = [
        {
            "id": m.id,
            "object": "model",
            "created": m.handler.created_at,
            "owned_by": "bodega",
            "type": m.spec.model_type,
            "status": m.handler.status,
            "context_length": m.handler.context_length,
        }
        for m in registry().models
    ]
    return json_response({"object": "list", "data": data})


@blueprint.get("/v1/queue/stats")
async def queue_stats() -> Response:
    """Queued, running, completed and rejected requests per model."""
    models = registry().models
    per_model = {m.id: m.admission.stats for m in models}
    return json_response(
        {
            "queue_stats": {
                "queue_size": sum(s.queued for s in per_model.values()),
                "active_requests": sum(s.running for s in per_model.values()),
                "models": per_model,
            }
        }
    )
