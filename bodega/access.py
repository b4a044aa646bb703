"""Who may call what: API keys (``Authorization: Bearer`` or ``x-api-key``),
admin keys for the routes that change what runs or what is on disk, and CORS.

Keys come from ``server.api_keys`` / ``server.admin_api_keys`` or the
``BODEGA_API_KEY`` / ``BODEGA_ADMIN_API_KEY`` environment variables
(comma-separated). They are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os

from quart import Quart, request
from quart_cors import cors

from bodega.errors import BodegaError
from bodega.settings import ServerSection

log = logging.getLogger("bodega")

# Open whatever the keys say: probes, the API description and the page's files.
OPEN_PATHS = ("/health", "/health/ready", "/openapi.json", "/docs", "/", "/favicon.ico")
OPEN_PREFIXES = ("/docs/static/", "/static/")
ADMIN_PREFIXES = ("/v1/admin/",)


class Unauthorized(BodegaError):
    """No key, or not one of the configured keys."""

    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"

    def headers(self) -> dict[str, str]:
        """What to send the key in."""
        return {"WWW-Authenticate": 'Bearer realm="bodega"'}


def keys_from(configured: list[str], env_name: str) -> tuple[bytes, ...]:
    """The configured keys plus those in ``env_name`` (comma-separated)."""
    extra = [k.strip() for k in os.environ.get(env_name, "").split(",")]
    return tuple(k.encode() for k in [*configured, *extra] if k)


def matches(given: str | None, keys: tuple[bytes, ...]) -> bool:
    """Whether ``given`` is one of ``keys``, comparing every key in constant time."""
    if given is None:
        return False
    candidate = given.encode()
    found = False
    for key in keys:
        found |= hmac.compare_digest(candidate, key)
    return found


def presented_key() -> str | None:
    """The key the request carries: ``Authorization: Bearer`` or ``x-api-key``."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key")


def is_admin_route(method: str, path: str) -> bool:
    """Routes that change what runs or what is on disk."""
    if path.startswith(ADMIN_PREFIXES):
        return True
    return method == "DELETE" and path.startswith("/v1/models/")


def install(app: Quart, server: ServerSection) -> None:
    """Guard ``app`` with the server's keys and CORS settings."""
    keys = keys_from(server.api_keys, "BODEGA_API_KEY")
    admin_keys = keys_from(server.admin_api_keys, "BODEGA_ADMIN_API_KEY") or keys
    if server.cors_origins:
        origins = "*" if "*" in server.cors_origins else server.cors_origins
        cors(
            app,
            allow_origin=origins,
            allow_methods=server.cors_methods,
            allow_headers=server.cors_headers,
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    if not keys and not admin_keys:
        _warn_if_exposed(server.host)
        return

    @app.before_request
    async def check_key() -> None:
        path = request.path
        if request.method == "OPTIONS" or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return
        if path == "/metrics" and not server.metrics_require_key:
            return
        needed = admin_keys if is_admin_route(request.method, path) else keys
        if needed and not matches(presented_key(), needed):
            what = (
                "an admin API key" if needed is admin_keys and needed is not keys else "an API key"
            )
            raise Unauthorized(
                f"This route needs {what}: send it as 'Authorization: Bearer <key>' or "
                "'x-api-key: <key>'."
            )


def _warn_if_exposed(host: str) -> None:
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        log.warning(
            "serving on %s with no API key: anyone who can reach this address can run, load, "
            "unload and download models and read their answers; set server.api_keys or "
            "BODEGA_API_KEY",
            host,
        )
