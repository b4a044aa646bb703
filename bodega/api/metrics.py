"""``GET /metrics``: one Prometheus scrape over the server and every model."""

from __future__ import annotations

from prometheus_client.exposition import choose_encoder
from quart import Blueprint, Response, request

from bodega.errors import NotFound

from .admin import refresh_stats
from .common import registry

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
async def metrics() -> Response:
    """The exposition, with the handlers' figures fresh from their ``Stats``."""
    models = registry()
    if models.metrics is None:
        raise NotFound("Metrics are off (server.metrics: false, or --metrics off).")
    await refresh_stats([m for m in models.models if m.status == "running"])
    # The text format Prometheus asks for, or OpenMetrics when its Accept says so.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(models.metrics.registry), content_type=content_type)
