"""Errors in Anthropic's shape on the ``/v1/messages`` routes.

Anthropic's error ``type`` follows the HTTP status; the message is Bodega's
own (it names the field). Every other route keeps OpenAI's shape.
"""

from __future__ import annotations

from bodega.errors import BodegaError

from .responses import ErrorBody, ErrorOut

PATH_PREFIX = "/v1/messages"

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def is_anthropic_path(path: str) -> bool:
    """Whether ``path`` is one of Anthropic's Messages routes."""
    return path == PATH_PREFIX or path.startswith(PATH_PREFIX + "/")


def error_type(status: int) -> str:
    """Anthropic's error ``type`` for an HTTP ``status``."""
    if status in _TYPES:
        return _TYPES[status]
    return "invalid_request_error" if status < 500 else "api_error"


def error_body(exc: BodegaError, request_id: str | None = None) -> ErrorBody:
    """The Anthropic error body (or ``error`` event) for ``exc``."""
    message = exc.message
    if exc.param and exc.param not in message:
        message = f"{exc.param}: {message}"
    return ErrorBody(
        error=ErrorOut(type=error_type(exc.status), message=message), request_id=request_id
    )
