"""Fetch an image from an http(s) URL without becoming a way into the network.

The server fetches URLs a client names, so a client could make it reach what
only the server can: loopback services, the private network, cloud metadata
addresses. Every hop is therefore checked after DNS resolution: a host whose
addresses include a loopback, private, link-local, multicast, reserved or
unspecified one is refused (unless it is in ``allowed_hosts``), and the
connection goes to the very address that was checked (the URL's host stays
in the ``Host`` header and TLS SNI), so a second DNS answer cannot swap it.
Redirects are followed by hand, each one checked again, at most
``max_redirects``. The whole fetch is bounded by ``timeout`` and the body by
``max_bytes``; what arrives must be an image (``image_bytes.checked_image``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import trio

from bodega.errors import InvalidRequest

from .image_bytes import checked_image, too_large

Resolver = Callable[[str, int], Awaitable[list[str]]]

# Most specific first: 169.254.0.0/16 and 127.0.0.0/8 are "private" too.
_REFUSED = (
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address"),
    ("is_multicast", "a multicast address"),
    ("is_unspecified", "an unspecified address"),
    ("is_reserved", "a reserved address"),
    ("is_private", "a private address"),
)


@dataclass(frozen=True)
class FetchPolicy:
    """What the fetcher may do (``server.remote_images`` and friends)."""

    remote_images: bool = True
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    max_bytes: int = 10 * 1024 * 1024
    timeout: float = 5.0
    max_redirects: int = 3


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to."""
    infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def refusal(address: str) -> str | None:
    """Why ``address`` may not be fetched from, or None."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for attribute, reason in _REFUSED:
        if getattr(ip, attribute):
            return reason
    return None


async def fetch_image(
    url: str, policy: FetchPolicy, *, param: str, resolver: Resolver = system_resolver
) -> bytes:
    """The image at ``url``; a 400 naming ``param`` (or 413 over the size cap)
    saying why when it cannot or may not be fetched."""
    if not policy.remote_images:
        raise InvalidRequest(
            "Fetching images from URLs is turned off here (server.remote_images: false); "
            "send the image as a base64 data: URL.",
            param=param,
        )
    with trio.move_on_after(policy.timeout) as scope:
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
            current = httpx.URL(url)
            for _ in range(policy.max_redirects + 1):
                data, location = await _one_hop(client, current, policy, param, resolver)
                if location is None:
                    checked_image(data, param=param)
                    return data
                current = current.join(location)
            raise InvalidRequest(
                f"The image URL redirected more than {policy.max_redirects} times.", param=param
            )
    assert scope.cancelled_caught
    raise InvalidRequest(f"Fetching the image took longer than {policy.timeout:g} s.", param=param)


async def _one_hop(
    client: httpx.AsyncClient,
    url: httpx.URL,
    policy: FetchPolicy,
    param: str,
    resolver: Resolver,
) -> tuple[bytes, str | None]:
    """The body at ``url``, or the ``Location`` it redirects to."""
    if url.scheme not in ("http", "https"):
        raise InvalidRequest(
            f"Image URLs must be https:, http: or data: URLs, not {url.scheme}:.", param=param
        )
    host = url.host
    if not host:
        raise InvalidRequest("The image URL has no host.", param=param)
    port = url.port or (443 if url.scheme == "https" else 80)
    address = await _checked_address(host, port, policy, param, resolver)
    headers = {"Host": url.netloc.decode("ascii"), "Accept": "image/*"}
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    try:
        async with client.stream(
            "GET", url.copy_with(host=address), headers=headers, extensions=extensions
        ) as response:
            if response.is_redirect and "location" in response.headers:
                return b"", response.headers["location"]
            if response.status_code != 200:
                raise InvalidRequest(
                    f"Fetching the image answered HTTP {response.status_code}.", param=param
                )
            return await _bounded_body(response, policy.max_bytes, param), None
    except httpx.HTTPError as exc:
        raise InvalidRequest(
            f"The image could not be fetched from {host}: {exc or type(exc).__name__}.",
            param=param,
        ) from None


async def _checked_address(
    host: str, port: int, policy: FetchPolicy, param: str, resolver: Resolver
) -> str:
    """The address to connect to: every address ``host`` resolves to is checked."""
    try:
        addresses = [str(ipaddress.ip_address(host))]  # a literal address is itself
    except ValueError:
        addresses = []
    try:
        addresses = addresses or await resolver(host, port)
    except OSError as exc:
        raise InvalidRequest(
            f"The image host {host!r} does not resolve: {exc}.", param=param
        ) from None
    if not addresses:
        raise InvalidRequest(f"The image host {host!r} does not resolve.", param=param)
    if host not in policy.allowed_hosts:
        for address in addresses:
            reason = refusal(address)
            if reason is not None:
                raise InvalidRequest(
                    f"The image host {host!r} resolves to {address}, {reason}; the server "
                    "does not fetch from there (server.remote_image_allowed_hosts lists "
                    "hosts that may).",
                    param=param,
                )
    return addresses[0]


async def _bounded_body(response: httpx.Response, max_bytes: int, param: str) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes, param)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise too_large(max_bytes, param)
    return bytes(body)
