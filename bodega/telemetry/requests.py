"""Requests you can follow: an id on every response, an access-log line each.

``RequestTracker`` wraps the ASGI app. It takes ``X-Request-ID`` from the
request (bounded, sanitised) or makes one, returns it on the response, and
keeps a ``RequestInfo`` in a context variable that the model path fills in
(model, tokens); when the body has been sent it counts the request and
writes the access-log line. Log records get ``request_id`` through
``RequestIdFilter``.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .context import CURRENT, RequestInfo, current_request_id
from .metrics import Metrics

Message = MutableMapping[str, Any]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

MAX_ID_LENGTH = 128
_UNSAFE = re.compile(r"[^A-Za-z0-9._:@/+=-]")
access_log = logging.getLogger("bodega.access")


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-ID`` made safe for logs and headers, or a new one."""
    for name, value in headers:
        if name.lower() == b"x-request-id":
            cleaned = _UNSAFE.sub("", value.decode("latin-1"))[:MAX_ID_LENGTH]
            if cleaned:
                return cleaned
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (``-`` outside a request) to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Never drops a record."""
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id() or "-"
        return True


class RequestTracker:
    """The ASGI middleware; ``metrics`` None and ``log_requests`` False turn
    each part off."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None, log_requests: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests
        # For the idle shutdown: requests running now, and when the last ended.
        self.in_flight = 0
        self.last_request = time.monotonic()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one request with its id and account for it when done."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        info = RequestInfo(
            request_id=request_id_from(scope.get("headers", [])),
            method=scope["method"],
            path=scope["path"],
            client=f"{client[0]}:{client[1]}" if client else "-",
            started=time.perf_counter(),
        )
        header = (b"x-request-id", info.request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                info.status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        token = CURRENT.set(info)
        self.in_flight += 1
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.in_flight -= 1
            self.last_request = time.monotonic()
            CURRENT.reset(token)
            self._account(info)

    def _account(self, info: RequestInfo) -> None:
        duration = time.perf_counter() - info.started
        status = info.status or 499  # the client left before any answer
        endpoint = info.endpoint or "unmatched"
        if self.metrics is not None:
            self.metrics.http.labels(info.method, endpoint, str(status), info.model).inc()
            self.metrics.http_latency.labels(info.method, endpoint).observe(duration)
        if self.log_requests:
            access_log.info(
                '%s %s %d %.1fms model=%s tokens_in=%d tokens_out=%d cached=%d client=%s',
                info.method, info.path, status, duration * 1000, info.model or "-",
                info.prompt_tokens, info.completion_tokens, info.cached_tokens, info.client,
                extra={"request_id": info.request_id, "access": _fields(info, status, duration)},
            )  # fmt: skip


def _fields(info: RequestInfo, status: int, duration: float) -> dict[str, Any]:
    """The access-log line as fields (the JSON log format writes them as keys)."""
    return {
        "method": info.method,
        "path": info.path,
        "model": info.model or None,
        "status": status,
        "duration_ms": round(duration * 1000, 2),
        "tokens_in": info.prompt_tokens,
        "tokens_out": info.completion_tokens,
        "cached_tokens": info.cached_tokens,
        "client": info.client,
    }
