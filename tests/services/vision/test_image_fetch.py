"""The guarded image fetcher against a local HTTP server standing in for the web.

A resolver seam maps test host names to addresses: ``images.test`` is the
local server (allowed by name, as ``server.remote_image_allowed_hosts``
would), ``evil.test`` resolves to a private address.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from bodega.errors import InvalidRequest, PayloadTooLarge
from bodega.services.vision.fetch import FetchPolicy, fetch_image, refusal

PARAM = "messages[0].content[0].image_url.url"


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (0, 128, 255)).save(out, format="PNG")
    return out.getvalue()


PNG = _png()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        # Noted before answering: the client may assert on it as soon as it has the answer.
        self.server.hosts.append(self.headers["Host"])  # type: ignore[attr-defined]
        port = self.server.server_address[1]
        routes = {
            "/ok.png": (200, {"Content-Type": "image/png"}, PNG),
            "/text": (200, {"Content-Type": "image/png"}, b"<html>not an image</html>"),
            "/big": (200, {"Content-Type": "image/png"}, PNG + b"\0" * 5000),
            "/missing": (404, {}, b"no"),
            "/to-loopback": (302, {"Location": f"http://127.0.0.1:{port}/ok.png"}, b""),
            "/to-ok": (302, {"Location": "/ok.png"}, b""),
            "/to-evil": (302, {"Location": f"http://evil.test:{port}/ok.png"}, b""),
            "/loop": (302, {"Location": "/loop"}, b""),
        }
        if self.path == "/slow":
            time.sleep(3.0)
        status, headers, body = routes.get(self.path, (200, {}, PNG))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.hosts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


async def resolver(host: str, port: int) -> list[str]:
    return {"images.test": ["127.0.0.1"], "evil.test": ["10.0.0.5"]}.get(host, [])


POLICY = FetchPolicy(allowed_hosts=frozenset({"images.test"}), max_bytes=2000, timeout=1.0)


async def fetch(url: str, policy: FetchPolicy = POLICY) -> bytes:
    return await fetch_image(url, policy, param=PARAM, resolver=resolver)


def url(server: ThreadingHTTPServer, path: str, host: str = "images.test") -> str:
    return f"http://{host}:{server.server_address[1]}{path}"


async def test_an_allowed_host_is_fetched_with_its_name_in_host(
    server: ThreadingHTTPServer,
) -> None:
    assert await fetch(url(server, "/ok.png")) == PNG
    assert server.hosts == [f"images.test:{server.server_address[1]}"]  # type: ignore[attr-defined]


async def test_a_redirect_on_the_same_host_is_followed(server: ThreadingHTTPServer) -> None:
    assert await fetch(url(server, "/to-ok")) == PNG


async def test_a_redirect_to_loopback_is_refused(server: ThreadingHTTPServer) -> None:
    with pytest.raises(InvalidRequest, match=r"127\.0\.0\.1, a loopback address") as caught:
        await fetch(url(server, "/to-loopback"))
    assert caught.value.param == PARAM


async def test_a_name_resolving_to_a_private_address_is_refused_before_connecting(
    server: ThreadingHTTPServer,
) -> None:
    with pytest.raises(InvalidRequest, match=r"10\.0\.0\.5, a private address"):
        await fetch(url(server, "/ok.png", host="evil.test"))
    with pytest.raises(InvalidRequest, match="a private address"):
        await fetch(url(server, "/to-evil"))  # and on a redirect
    assert server.hosts == [f"images.test:{server.server_address[1]}"]  # type: ignore[attr-defined]


async def test_loopback_by_address_is_refused(server: ThreadingHTTPServer) -> None:
    with pytest.raises(InvalidRequest, match="loopback"):
        await fetch_image(url(server, "/ok.png", host="127.0.0.1"), POLICY, param=PARAM)


async def test_too_big_is_413(server: ThreadingHTTPServer) -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        await fetch(url(server, "/big"))
    assert caught.value.status == 413


async def test_slow_is_a_timeout(server: ThreadingHTTPServer) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidRequest, match="longer than 1 s"):
        await fetch(url(server, "/slow"))
    assert time.monotonic() - started < 2.5  # the server would take 3 s


async def test_not_an_image_an_error_status_and_a_redirect_loop(
    server: ThreadingHTTPServer,
) -> None:
    with pytest.raises(InvalidRequest, match="not a whole, readable"):
        await fetch(url(server, "/text"))
    with pytest.raises(InvalidRequest, match="HTTP 404"):
        await fetch(url(server, "/missing"))
    with pytest.raises(InvalidRequest, match="more than 3 times"):
        await fetch(url(server, "/loop"))


async def test_schemes_unresolvable_hosts_and_remote_images_off(
    server: ThreadingHTTPServer,
) -> None:
    for bad in ("ftp://images.test/x.png", "file:///etc/passwd"):
        with pytest.raises(InvalidRequest, match="https:, http: or data:"):
            await fetch(bad)
    with pytest.raises(InvalidRequest, match="does not resolve"):
        await fetch(url(server, "/ok.png", host="nowhere.test"))
    with pytest.raises(InvalidRequest, match="turned off"):
        await fetch(url(server, "/ok.png"), FetchPolicy(remote_images=False))


def test_refusal_covers_the_special_ranges() -> None:
    assert refusal("93.184.216.34") is None
    assert refusal("2606:4700::1111") is None
    assert refusal("::ffff:127.0.0.1") == "a loopback address"
    assert refusal("169.254.169.254") == "a link-local address"
    assert refusal("192.168.1.10") == "a private address"
    assert refusal("fd00::1") == "a private address"
    assert refusal("224.0.0.1") == "a multicast address"
    assert refusal("0.0.0.0") is not None
