"""What every route needs: body decoding, JSON and SSE responses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar, cast

import msgspec
from quart import Response, current_app, request

from bodega.errors import InvalidRequest, from_validation_error
from bodega.limits import Limits
from bodega.openai.field_policy import decode_request
from bodega.openai.responses import encoder
from bodega.registry.priority import use_request_priority
from bodega.registry.registry import Registry
from bodega.services.vision.fetch import FetchPolicy
from bodega.settings import Settings

T = TypeVar("T")


def registry() -> Registry:
    """The registry of the app serving this request."""
    return cast(Registry, current_app.extensions["bodega.registry"])


def settings() -> Settings:
    """The settings of the app serving this request."""
    return cast(Settings, current_app.extensions["bodega.settings"])


def fetch_policy() -> FetchPolicy:
    """How this server fetches images that requests name by URL."""
    server = settings().server
    return FetchPolicy(
        remote_images=server.remote_images,
        allowed_hosts=frozenset(server.remote_image_allowed_hosts),
        max_bytes=server.max_image_bytes,
    )


def limits() -> Limits:
    """The size limits of the app serving this request (``bodega.limits``)."""
    return cast(Limits, current_app.extensions["bodega.limits"])


async def decode_json(body_type: type[T]) -> T:
    """Decode the request body into ``body_type``; a 400 names the bad field.
    A ``priority`` or ``service_tier`` in it becomes the request's priority."""
    body = await request.get_data(cache=False)
    if not body:
        raise InvalidRequest("The request body is empty; expected a JSON object.")
    try:
        decoded = decode_request(body, body_type, request.path)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise from_validation_error(exc) from None
    use_request_priority(decoded)  # its priority / service_tier orders admission
    return decoded


def json_response(payload: Any, status: int = 200) -> Response:
    """``payload`` (Structs, dicts, lists) as an ``application/json`` response."""
    return Response(encoder.encode(payload), status=status, content_type="application/json")


def sse_response(events: AsyncIterator[bytes]) -> Response:
    """A ``text/event-stream`` response that is never cut by a timeout."""
    response = Response(
        events,
        content_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.timeout = None
    return response
