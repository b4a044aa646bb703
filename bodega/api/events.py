"""``GET /v1/admin/events``: a snapshot of every model each second, as SSE,
for the status page (``GET /``): status, memory, queue, tokens per second,
time to first token, and the last errors."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import trio
from quart import Blueprint, Response, current_app, request

from bodega.errors import InvalidRequest
from bodega.openai.sse import event
from bodega.registry.registry import Registry
from bodega.telemetry.collector import model_labels

from .admin import memory_of, refresh_stats
from .common import registry, sse_response

blueprint = Blueprint("events", __name__)

RECENT_ERRORS = 20


class ModelSnapshot(msgspec.Struct):
    """One model on the status page."""

    id: str
    type: str
    engine: str
    status: str
    memory_mb: float
    running: int
    waiting: int
    restarts: int
    error: str | None
    tokens_per_second: float | None
    ttft_ms: float | None


class Snapshot(msgspec.Struct):
    """One event of ``/v1/admin/events``."""

    time: float
    models: list[ModelSnapshot]
    errors: list[dict[str, Any]]


def recent_errors() -> deque[dict[str, Any]]:
    """The app's last error answers, newest last."""
    errors: deque[dict[str, Any]] = current_app.extensions.setdefault(
        "bodega.recent_errors", deque(maxlen=RECENT_ERRORS)
    )
    return errors


class _Rates:
    """Per-model tokens/s and mean TTFT between two snapshots, from /metrics' counters."""

    def __init__(self, models: Registry) -> None:
        self._models = models
        self._last: dict[str, tuple[float, float, float, float]] = {}

    def __call__(self, model_id: str, labels: dict[str, str]) -> tuple[float | None, float | None]:
        metrics = self._models.metrics
        if metrics is None:
            return None, None
        value = metrics.registry.get_sample_value
        now = time.monotonic()
        tokens = value("bodega_generation_tokens_total", labels) or 0.0
        ttft_sum = value("bodega_time_to_first_token_seconds_sum", labels) or 0.0
        ttft_count = value("bodega_time_to_first_token_seconds_count", labels) or 0.0
        before = self._last.get(model_id)
        self._last[model_id] = (now, tokens, ttft_sum, ttft_count)
        if before is None:
            return 0.0, None
        elapsed = max(now - before[0], 1e-6)
        requests = ttft_count - before[3]
        ttft = (ttft_sum - before[2]) / requests * 1000 if requests else None
        return (tokens - before[1]) / elapsed, ttft


@blueprint.get("/v1/admin/events")
async def events() -> Response:
    """Snapshots every ``interval`` seconds (default 1, 0.2 to 10)."""
    try:
        interval = float(request.args.get("interval", "1"))
    except ValueError:
        raise InvalidRequest("interval must be a number of seconds", param="interval") from None
    if not 0.2 <= interval <= 10:
        raise InvalidRequest("interval must be 0.2 to 10 seconds", param="interval")
    return sse_response(_snapshots(registry(), recent_errors(), interval))


async def _snapshots(
    models: Registry, errors: deque[dict[str, Any]], interval: float
) -> AsyncIterator[bytes]:
    rates = _Rates(models)
    while True:
        await refresh_stats([m for m in models.models if m.status == "running"])
        rows = []
        for model in models.models:
            state = model.state()
            labels = dict(zip(("model", "engine", "model_type"), model_labels(model), strict=True))
            tps, ttft = rates(model.id, labels)
            stats = model.admission.stats
            rows.append(
                ModelSnapshot(
                    id=model.id,
                    type=model.spec.model_type,
                    engine=state.engine,
                    status=state.status,
                    memory_mb=memory_of(model).total_mb,
                    running=stats.running,
                    waiting=stats.queued,
                    restarts=state.restarts,
                    error=state.error,
                    tokens_per_second=None if tps is None else round(tps, 2),
                    ttft_ms=None if ttft is None else round(ttft, 1),
                )
            )
        yield event(Snapshot(time=time.time(), models=rows, errors=list(errors)))
        await trio.sleep(interval)


@blueprint.get("/")
async def status_page() -> Response:
    """The status page (``bodega/static``: no CDN, no build step)."""
    return await current_app.send_static_file("index.html")
