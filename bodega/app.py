"""create_app(): the Quart-Trio app with its routes and error handlers.

Sizes come from ``bodega.limits``: the body limit, and the drain that reads
the rest of an unread body before any answer leaves (so a client that sends
its whole body first still reads its 413). A message too large for a handler
channel (``FrameTooLarge``, ``SpillFailed``) answers 413, never 500.
"""

from __future__ import annotations

import logging
import time

from quart import Quart, Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from bodega import access
from bodega.anthropic import errors as anthropic_errors
from bodega.cache.cache import ResponseCache
from bodega.catalog_presets import routes as catalog_routes
from bodega.catalog_presets.models import RoleResolver
from bodega.errors import (
    BodegaError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    error_body,
)
from bodega.limits import BodyMeter, limits_for, settle_body
from bodega.registry.registry import Registry
from bodega.settings import Settings, default_data_dir
from bodega.telemetry.collector import ModelCollector
from bodega.telemetry.context import CURRENT, current_request_id
from bodega.telemetry.requests import RequestTracker
from ipc.framing import FrameTooLarge

from .api import (
    admin,
    anthropic_messages,
    audio,
    docs,
    events,
    forge,
    hub,
    images,
    metrics,
    responses,
    status,
    text,
    tools,
    vision,
)
from .api import embeddings as embeddings_api
from .api import rag as rag_api
from .api.common import json_response
from .api.events import recent_errors

log = logging.getLogger("bodega")

_HTTP_ERRORS: dict[int, type[BodegaError]] = {
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
}


def render_error(exc: BodegaError) -> Response:
    """The error response for ``exc``, in Anthropic's shape on /v1/messages
    routes and OpenAI's elsewhere (kept for the status page)."""
    recent_errors().append(
        {
            "time": time.time(),
            "status": exc.status,
            "code": exc.code,
            "message": exc.message,
            "path": request.path,
            "request_id": current_request_id(),
        }
    )
    body = (
        anthropic_errors.error_body(exc, current_request_id())
        if anthropic_errors.is_anthropic_path(request.path)
        else error_body(exc)
    )
    response = json_response(body, status=exc.status)
    response.headers.update(exc.headers())
    return response


def serve_settings(app: Quart, settings: Settings) -> None:
    """Requests from now on see ``settings``: the app's copy, and the tiers
    and catalog the registry routes names by (at start and on SIGHUP)."""
    registry: Registry = app.extensions["bodega.registry"]
    app.extensions["bodega.settings"] = settings
    registry.tiers = settings.tiers
    app.extensions["bodega.catalog"] = settings.catalog
    catalog = settings.catalog
    registry.name_resolver = RoleResolver(registry, catalog) if catalog is not None else None


def create_app(settings: Settings, registry: Registry) -> QuartTrio:
    """The HTTP app serving ``registry``'s models."""
    limits = limits_for(settings)
    app = QuartTrio("bodega")
    app.config["RESPONSE_TIMEOUT"] = None  # the default 60 s would cut long streams
    app.config["BODY_TIMEOUT"] = 120
    app.config["MAX_CONTENT_LENGTH"] = limits.body_bytes
    app.extensions["bodega.registry"] = registry
    serve_settings(app, settings)
    runtime_device = settings.runtime.device
    registry.default_device = None if runtime_device == "auto" else runtime_device
    app.extensions["bodega.limits"] = limits
    app.asgi_app = BodyMeter(app.asgi_app, limits.drain_bytes)  # type: ignore[method-assign]
    for module in (
        text, admin, status, hub, metrics, docs, events, tools, embeddings_api, audio, rag_api,
        vision, images, responses, anthropic_messages, forge, catalog_routes,
    ):  # fmt: skip
        app.register_blueprint(module.blueprint)
    if registry.metrics is not None:
        registry.metrics.registry.register(ModelCollector(lambda: registry.models))
    tracker = RequestTracker(app.asgi_app, registry.metrics, settings.server.access_log)
    app.asgi_app = tracker  # type: ignore[method-assign]
    app.extensions["bodega.requests"] = tracker
    app.extensions["bodega.cache"] = ResponseCache.open(
        settings.cache,
        settings.server.data_dir or default_data_dir(),
        registry.metrics.registry if registry.metrics is not None else None,
    )

    access.install(app, settings.server)

    @app.before_request
    async def name_the_route() -> None:
        info = CURRENT.get()
        if info is not None and request.url_rule is not None:
            info.endpoint = request.url_rule.rule

    @app.after_request
    async def drain_unread_body(response: Response) -> Response:
        return await settle_body(response, limits)

    @app.errorhandler(FrameTooLarge)
    async def on_message_too_large(exc: FrameTooLarge) -> Response:
        return render_error(
            PayloadTooLarge(f"The request is too large to pass to the model: {exc}")
        )

    @app.errorhandler(BodegaError)
    async def on_bodega_error(exc: BodegaError) -> Response:
        return render_error(exc)

    @app.errorhandler(HTTPException)
    async def on_http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        error_type = _HTTP_ERRORS.get(code, InvalidRequest)
        return render_error(error_type(exc.description or exc.name))

    @app.errorhandler(Exception)
    async def on_unexpected(exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return render_error(BodegaError("The server hit an internal error."))

    return app
