"""create_app(): the Quart-Trio app with its routes and error handlers."""

from __future__ import annotations

import logging

from quart import Response
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from bodega.errors import (
    BodegaError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    error_body,
)
from bodega.registry.registry import Registry
from bodega.settings import Settings

from .api import admin, audio, status, text, tools
from .api import embeddings as embeddings_api
from .api import rag as rag_api
from .api.common import json_response

log = logging.getLogger("bodega")

_HTTP_ERRORS: dict[int, type[BodegaError]] = {
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
}


def render_error(exc: BodegaError) -> Response:
    """The OpenAI error response for ``exc``."""
    response = json_response(error_body(exc), status=exc.status)
    response.headers.update(exc.headers())
    return response


def create_app(settings: Settings, registry: Registry) -> QuartTrio:
    """The HTTP app serving ``registry``'s models."""
    app = QuartTrio("bodega")
    app.config["RESPONSE_TIMEOUT"] = None  # the default 60 s would cut long streams
    app.config["BODY_TIMEOUT"] = 120
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body_bytes
    app.extensions["bodega.registry"] = registry
    app.extensions["bodega.settings"] = settings
    for module in (text, admin, status, tools, embeddings_api, audio, rag_api):
        app.register_blueprint(module.blueprint)

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
