"""The request being served, as a context variable both telemetry halves share."""

from __future__ import annotations

import contextvars

import msgspec


class RequestInfo(msgspec.Struct, kw_only=True):
    """What one request did, as the access log and the metrics report it."""

    request_id: str
    method: str
    path: str
    client: str
    started: float
    endpoint: str = ""
    model: str = ""
    status: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


CURRENT: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "bodega_request", default=None
)


def current_request_id() -> str:
    """The id of the request being served here, or ``""``."""
    info = CURRENT.get()
    return info.request_id if info is not None else ""
