"""Limits that always answer: oversized bodies get their 413 (even from a
client that sends everything before reading), large prompts travel to the
handler through shared memory, and nothing too large is ever a 500."""

from __future__ import annotations

import json
import socket
from types import SimpleNamespace
from typing import Any, cast

import pytest
from quart import Response

from bodega.app import create_app
from bodega.limits import MESSAGE_EXPANSION, MIN_DRAIN_BYTES, limits_for
from bodega.registry.registry import Registry
from bodega.settings import EMBEDDED_WHISPER_ID, ServerSection, Settings
from ipc.framing import DEFAULT_MAX_FRAME, MAX_SPILL, FrameTooLarge, SpillFailed
from tests.helpers import Server, chat_body

MiB = 1024 * 1024
BODY_LIMIT = 32 * MiB  # the default server.max_body_bytes


def raw_post(server: Server, path: str, head: dict[str, str], body: bytes) -> tuple[int, Any]:
    """POST with a plain socket that writes the whole body before reading
    anything; returns the status and JSON body, after the server closed."""
    port = int(server.url.rsplit(":", 1)[1])
    lines = [f"POST {path} HTTP/1.1", "Host: test", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in head.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request)  # a server that stopped reading fails this
        received = b""
        while chunk := sock.recv(65536):  # ... and one that never closes, this
            received += chunk
    header, _, content = received.partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1])
    assert b"connection: close" in header.lower()
    return status, json.loads(content)


def test_a_17_mb_chat_prompt_is_refused_as_too_long_not_a_500(server: Server) -> None:
    prompt = "hello " * (17_000_000 // 6)  # more than a frame, less than the body limit
    body = chat_body(prompt, model="smollm2-135m", max_tokens=4)
    r = server.client.post("/v1/chat/completions", json=body, timeout=600)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "context_length_exceeded"
    # The server and the model go on answering.
    r = server.client.post("/v1/chat/completions", json=chat_body("Hi", max_tokens=4))
    assert r.status_code == 200, r.text
    assert server.client.get("/health").status_code == 200


def test_a_whole_oversized_body_before_reading_still_gets_its_413(server: Server) -> None:
    body = b"x" * (BODY_LIMIT + MiB)
    for _ in range(3):
        status, error = raw_post(
            server, "/v1/chat/completions", {"Content-Type": "application/json"}, body
        )
        assert status == 413
        assert error["error"]["code"] == "payload_too_large"
    assert server.client.get("/health").status_code == 200


def test_an_upload_refused_from_its_headers_is_read_before_the_answer(server: Server) -> None:
    # Under the body limit but over the audio one: the route refuses it
    # before reading it, and the server reads (and drops) it anyway.
    boundary = "bodegaboundary"
    envelope = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n'
        f"{EMBEDDED_WHISPER_ID}\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    body = envelope + b"\0" * (26 * MiB) + f"\r\n--{boundary}--\r\n".encode()
    for _ in range(3):
        status, error = raw_post(
            server,
            "/v1/audio/transcriptions",
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
            body,
        )
        assert status == 413
        assert error["error"]["param"] == "file"


def test_httpx_oversized_bodies_get_413_on_every_try(server: Server) -> None:
    for _ in range(3):
        r = server.client.post(
            "/v1/chat/completions",
            content=b"x" * (BODY_LIMIT + 1),
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413
        assert r.json()["error"]["type"] == "invalid_request_error"
    assert server.client.get("/health").status_code == 200


def test_a_body_past_the_drain_bound_is_answered_and_closed(server: Server) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    size = 2 * MIN_DRAIN_BYTES
    head = f"POST /v1/embeddings HTTP/1.1\r\nHost: test\r\nContent-Length: {size}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head.encode())
        answer = sock.recv(65536)  # answered at once, without waiting for the body
        assert answer.startswith(b"HTTP/1.1 413")
        assert b"connection: close" in answer.lower()
    assert server.client.get("/health").status_code == 200


def test_an_idle_kept_alive_connection_is_closed(server: Server) -> None:
    # The keep-alive timer starts after each answer (Hypercorn's default: 5 s).
    port = int(server.url.rsplit(":", 1)[1])
    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nxyz"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 400")


# --- limits and the error mapping, in process -----------------------------------


def settings(**server: Any) -> Settings:
    return Settings(server=ServerSection(**server), models=[])


def test_limits_come_from_the_settings_and_fit_a_message() -> None:
    limits = limits_for(settings())
    assert limits.body_bytes == BODY_LIMIT
    assert limits.audio_bytes == 25 * MiB
    assert limits.frame_bytes == DEFAULT_MAX_FRAME
    assert limits.message_bytes == MAX_SPILL
    assert limits.body_bytes * MESSAGE_EXPANSION <= limits.message_bytes
    assert limits.drain_bytes == 2 * BODY_LIMIT
    huge = limits_for(settings(max_body_bytes=4 * MAX_SPILL, max_audio_bytes=MAX_SPILL))
    assert huge.body_bytes == MAX_SPILL // MESSAGE_EXPANSION
    assert huge.audio_bytes == huge.body_bytes
    small = limits_for(settings(max_body_bytes=4096))
    assert small.drain_bytes == MIN_DRAIN_BYTES


@pytest.mark.trio
@pytest.mark.parametrize(
    "error",
    [
        FrameTooLarge("Generate encodes to 2000000000 bytes, more than the largest message"),
        SpillFailed("Generate of 20000000 bytes ... [Errno 28] No space left on device"),
    ],
)
async def test_a_message_that_cannot_travel_is_413(error: FrameTooLarge) -> None:
    app = create_app(settings(), cast(Registry, SimpleNamespace(metrics=None, models=[])))

    @app.post("/raises")
    async def raises() -> Response:
        raise error

    r = await app.test_client().post("/raises", data=b"{}")
    assert r.status_code == 413
    body = await r.get_json()
    assert body["error"]["code"] == "payload_too_large"
    assert str(error) in body["error"]["message"]
