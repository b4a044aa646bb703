"""Health and queue statistics."""

from __future__ import annotations

from datetime import UTC, datetime

from quart import Blueprint, Response

from bodega.openai.models import (
    Health,
    HealthDetail,
    QueueStatsAnswer,
    QueueSummary,
    Readiness,
)

from .admin import memory_of, refresh_stats
from .common import json_response, registry, settings

blueprint = Blueprint("status", __name__)


@blueprint.get("/health")
async def health() -> Response:
    """``ok`` with per-model detail, or ``unhealthy``/503 when nothing runs."""
    models = registry().models
    states = {m.id: m.state() for m in models}
    if not any(s.status == "running" for s in states.values()):
        why = "no_models" if not models else "no_running_models"
        return json_response(Health("unhealthy", None, why, timestamp=_now()), status=503)
    await refresh_stats([m for m in models if states[m.id].status == "running"])
    detail = [
        HealthDetail(
            id=m.id,
            type=m.spec.model_type,
            status=states[m.id].status,
            ram_usage_mb=memory_of(m).total_mb,
            restarts=states[m.id].restarts,
            last_exit_code=states[m.id].last_exit_code,
            last_restart_at=states[m.id].last_restart_at,
            progress=states[m.id].progress,
        )
        for m in models
    ]
    return json_response(
        Health(
            status="ok",
            model_id=", ".join(m.id for m in models),
            model_status=f"initialized ({len(models)} model(s))",
            models_detail=detail,
            timestamp=_now(),
        )
    )


def _now() -> str:
    """The docs' ``timestamp``: now, ISO 8601 to the second, in UTC."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@blueprint.get("/health/ready")
async def ready() -> Response:
    """200 once every model of the configuration runs, else 503 with the reason:
    for load balancers and orchestrators."""
    statuses = {m.id: m.status for m in registry().models}
    loaded = [model_id for model_id, status in statuses.items() if status == "running"]
    waiting = [
        f"{spec.id} is {statuses.get(spec.id, 'not loaded')}"
        for spec in settings().models
        if statuses.get(spec.id) != "running"
    ]
    if waiting:
        body = Readiness(status="not_ready", loaded_models=loaded, reason="; ".join(waiting))
        return json_response(body, status=503)
    return json_response(Readiness(status="ready", loaded_models=loaded))


@blueprint.get("/v1/queue/stats")
async def queue_stats() -> Response:
    """Queued, running, completed and rejected requests per model."""
    per_model = {m.id: m.admission.stats for m in registry().models}
    summary = QueueSummary(
        queue_size=sum(s.queued for s in per_model.values()),
        active_requests=sum(s.running for s in per_model.values()),
        models=per_model,
    )
    return json_response(QueueStatsAnswer(queue_stats=summary))
