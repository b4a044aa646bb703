"""One bounded GET against a tool provider: a total deadline and a response size cap."""

from __future__ import annotations

import functools
import ssl

import certifi
import httpx
import trio

from bodega.errors import ToolProviderFailed
from bodega.tools.config import ToolsSection

MAX_REDIRECTS = 5


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One verified TLS context for every request (loading CA files is slow)."""
    return ssl.create_default_context(cafile=certifi.where())


async def fetch(
    config: ToolsSection, provider: str, url: str, params: dict[str, str], *, accept: str
) -> bytes:
    """GET ``url`` with ``params``; the body, or ``ToolProviderFailed`` (502) saying why.

    The whole exchange is bounded by ``config.timeout`` seconds and the
    decoded body by ``config.max_response_bytes``.
    """
    cap = config.max_response_bytes
    headers = {"User-Agent": config.user_agent, "Accept": accept}
    try:
        with trio.fail_after(config.timeout):
            async with (
                httpx.AsyncClient(
                    timeout=config.timeout,
                    headers=headers,
                    follow_redirects=True,
                    max_redirects=MAX_REDIRECTS,
                    verify=_ssl_context(),
                ) as client,
                client.stream("GET", _with_params(url, params)) as response,
            ):
                if not response.is_success:
                    raise ToolProviderFailed(
                        f"{provider} answered HTTP {response.status_code} "
                        f"{response.reason_phrase}".rstrip()
                    )
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > cap:
                    raise _oversize(provider, cap)
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > cap:
                        raise _oversize(provider, cap)
                return bytes(body)
    except trio.TooSlowError:
        raise ToolProviderFailed(f"{provider} did not answer within {config.timeout:g} s") from None
    except httpx.TimeoutException:
        raise ToolProviderFailed(f"{provider} did not answer within {config.timeout:g} s") from None
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise ToolProviderFailed(f"{provider} could not be reached: {reason}") from None


def _with_params(url: str, params: dict[str, str]) -> httpx.URL:
    """``url`` with ``params`` added to the query it already has (httpx would replace it)."""
    return httpx.URL(url).copy_merge_params(params)


def _oversize(provider: str, cap: int) -> ToolProviderFailed:
    return ToolProviderFailed(f"{provider}'s response is larger than {cap} bytes")
