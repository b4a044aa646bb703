"""API keys, admin keys and CORS on a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from bodega.settings import embedded_lm_path
from tests.helpers import Server, chat_body, start_server, stop_server

KEY, OTHER_KEY, ADMIN_KEY = "sk-bodega-test-7f3a", "sk-second-91c2", "adm-5e8d"
ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    folder = tmp_path_factory.mktemp("access")
    config = folder / "config.yaml"
    config.write_text(
        "server:\n"
        f"  api_keys: [{KEY}]\n"
        f"  admin_api_keys: [{ADMIN_KEY}]\n"
        f"  cors_origins: ['{ORIGIN}']\n"
        f"models:\n  - model_path: {embedded_lm_path()}\n    model_id: lm\n"
    )
    log = folder / "server.log"
    server = start_server("--config", str(config), env={"BODEGA_API_KEY": OTHER_KEY}, log_path=log)
    yield server, log
    stop_server(server)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_guard_the_api_but_not_the_probes(guarded: tuple[Server, Path]) -> None:
    server, log = guarded
    client = server.client
    assert client.get("/health").status_code == 200
    assert client.get("/health/ready").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/openapi.json").status_code == 200

    missing = client.get("/v1/models")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/v1/models", headers=bearer("sk-wrong")).status_code == 401
    assert client.get("/v1/models", headers=bearer(KEY)).status_code == 200
    assert client.get("/v1/models", headers={"x-api-key": OTHER_KEY}).status_code == 200  # env
    reply = client.post("/v1/chat/completions", json=chat_body("Hi", model="lm", max_tokens=2),
                        headers=bearer(KEY))  # fmt: skip
    assert reply.status_code == 200

    # Admin routes take the admin key only.
    assert client.get("/v1/admin/loaded-models", headers=bearer(KEY)).status_code == 401
    assert client.get("/v1/admin/loaded-models", headers=bearer(ADMIN_KEY)).status_code == 200
    assert client.delete("/v1/models/acme/x", headers=bearer(KEY)).status_code == 401
    assert client.delete("/v1/models/acme/x", headers=bearer(ADMIN_KEY)).status_code == 404
    assert client.get("/v1/models", headers=bearer(ADMIN_KEY)).status_code == 401

    text = log.read_text()
    for key in (KEY, OTHER_KEY, ADMIN_KEY, "sk-wrong"):
        assert key not in text  # keys are never logged


def test_the_openai_sdk_sends_its_key(guarded: tuple[Server, Path]) -> None:
    server, _ = guarded
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY)
    assert [m.id for m in client.models.list()] == ["lm"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="sk-nope").models.list()


def test_cors_preflight_and_headers(guarded: tuple[Server, Path], server: Server) -> None:
    guarded_server, _ = guarded
    preflight = guarded_server.client.options(
        "/v1/chat/completions",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    answer = guarded_server.client.get("/v1/models", headers={"Origin": ORIGIN, **bearer(KEY)})
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
    stranger = guarded_server.client.get(
        "/v1/models", headers={"Origin": "https://evil.example", **bearer(KEY)}
    )
    assert "access-control-allow-origin" not in stranger.headers
    # Off by default.
    assert (
        "access-control-allow-origin"
        not in server.client.get("/health", headers={"Origin": ORIGIN}).headers
    )


def test_no_key_on_a_public_address_warns(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("models: []\n")
    log = tmp_path / "public.log"
    server = start_server("--config", str(config), "--host", "0.0.0.0", log_path=log)
    try:
        assert "with no API key" in log.read_text()
    finally:
        stop_server(server)
