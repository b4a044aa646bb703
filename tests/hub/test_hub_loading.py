"""Loading models by Hugging Face repo id on the llama.cpp, sentence-transformers
and faster-whisper engines: from the cache, with auto_download, without
waiting, on demand, and within max_loaded_models."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.helpers import Server, silence_wav
from tests.hub.conftest import (
    EMBEDDINGS_REPO,
    GGUF_REPO,
    WHISPER_REPO,
    HubServer,
    MiB,
)
from tests.hub_standin import HubStandIn


def load(server: Server, **spec: Any) -> httpx.Response:
    return server.client.post("/v1/admin/load-model", json=spec, timeout=120)


def chat(server: Server, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    return server.client.post("/v1/chat/completions", json=body, timeout=120)


def embed(server: Server, model: str) -> httpx.Response:
    return server.client.post(
        "/v1/embeddings", json={"model": model, "input": "hello"}, timeout=120
    )


def transcribe(server: Server, model: str) -> httpx.Response:
    files = {"file": ("silence.wav", silence_wav(), "audio/wav")}
    return server.client.post(
        "/v1/audio/transcriptions", data={"model": model}, files=files, timeout=120
    )


def loaded_ids(server: Server) -> list[str]:
    return [m["id"] for m in server.client.get("/v1/admin/loaded-models").json()["data"]]


def test_a_missing_repo_is_a_404_naming_the_download_endpoint(hub_server: HubServer) -> None:
    server = hub_server()
    reply = load(server, model_path=EMBEDDINGS_REPO, model_type="embeddings")
    assert reply.status_code == 404
    error = reply.json()["error"]
    assert error["param"] == "model_path" and "/v1/admin/download-model" in error["message"]
    assert loaded_ids(server) == []


def test_gguf_repo_with_auto_download_then_delete_is_refused_while_loaded(
    hub_server: HubServer,
) -> None:
    server = hub_server()
    many = load(server, model_path=GGUF_REPO, model_id="smol", auto_download=True)
    assert many.status_code == 400 and "Q8_0" in many.json()["error"]["message"]
    reply = load(server, model_path=GGUF_REPO, model_id="smol", quant="Q4_1", auto_download=True)
    assert reply.status_code == 201, reply.text
    model = reply.json()["model"]
    assert model["engine"] == "llamacpp" and model["repo_id"] == GGUF_REPO
    assert model["model_path"] == GGUF_REPO
    assert chat(server, "smol").status_code == 200

    refused = server.client.delete(f"/v1/models/{GGUF_REPO}")
    assert refused.status_code == 409 and "'smol'" in refused.json()["error"]["message"]
    assert server.client.delete("/v1/admin/unload-model/smol").status_code == 200
    assert server.client.delete(f"/v1/models/{GGUF_REPO}").status_code == 200


def test_wait_false_shows_downloading_then_running(hub: HubStandIn, hub_server: HubServer) -> None:
    server = hub_server()
    hub.throttle_bytes_per_s = 30 * MiB  # the 91 MB of weights take about 3 s
    reply = load(
        server,
        model_path=EMBEDDINGS_REPO,
        model_type="embeddings",
        model_id="minilm",
        auto_download=True,
        wait=False,
    )
    assert reply.status_code == 202, reply.text
    assert reply.json()["status"] == "accepted"
    assert reply.json()["model"]["status"] in ("downloading", "loading")

    seen: set[str] = set()
    progress: list[float] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        info = next(
            m
            for m in server.client.get("/v1/admin/loaded-models").json()["data"]
            if m["id"] == "minilm"
        )
        seen.add(info["status"])
        if info["status"] == "downloading":
            progress.append(info["progress"])
            health = server.client.get("/health").json()
            detail = health.get("models_detail") or []
            assert all(d["status"] == "downloading" for d in detail if d["id"] == "minilm")
        if info["status"] in ("running", "failed"):
            break
        time.sleep(0.2)
    assert info["status"] == "running", info
    assert "downloading" in seen and progress == sorted(progress)
    assert embed(server, "minilm").json()["data"][0]["embedding"].__len__() == 384


def test_wait_false_failure_is_listed_with_its_reason(hub_server: HubServer) -> None:
    server = hub_server()
    reply = load(
        server, model_path="acme/gated", model_type="embeddings", auto_download=True, wait=False
    )
    assert reply.status_code == 202
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = server.client.get("/v1/admin/loaded-models").json()["data"][0]
        if info["status"] == "failed":
            break
        time.sleep(0.1)
    assert info["status"] == "failed" and "HF_TOKEN" in info["error"]


def test_whisper_repo_on_faster_whisper(hub_server: HubServer) -> None:
    server = hub_server("server:\n  auto_download: true\nmodels: []\n")
    reply = load(server, model_path=WHISPER_REPO, model_type="whisper")
    assert reply.status_code == 201, reply.text
    assert reply.json()["model"]["engine"] == "faster-whisper"
    answer = transcribe(server, WHISPER_REPO)
    assert answer.status_code == 200, answer.text
    assert "text" in answer.json()


def test_on_demand_loading_and_lru_unloading(hub_server: HubServer) -> None:
    # The config's model comes by repo id, downloaded at start; it is pinned.
    server = hub_server(
        "server:\n  max_loaded_models: 2\n"
        "models:\n"
        f"  - model_path: {EMBEDDINGS_REPO}\n    model_id: pinned-minilm\n"
        "    model_type: embeddings\n    auto_download: true\n    pinned: true\n"
    )
    assert loaded_ids(server) == ["pinned-minilm"]
    for repo, fields in ((GGUF_REPO, {"quant": "Q4_1"}), (WHISPER_REPO, {})):
        reply = server.client.post(
            "/v1/admin/download-model", json={"model_path": repo, **fields}, timeout=120
        )
        assert reply.status_code == 200, reply.text

    whisper = server.client.get(f"/v1/models/{WHISPER_REPO}").json()
    assert whisper["model_type"] == "whisper" and whisper["engines"] == ["faster-whisper"]
    assert chat(server, GGUF_REPO).status_code == 200  # loaded on first use
    assert loaded_ids(server) == ["pinned-minilm", GGUF_REPO]
    assert transcribe(server, WHISPER_REPO).status_code == 200  # evicts the chat model
    assert loaded_ids(server) == ["pinned-minilm", WHISPER_REPO]
    assert chat(server, GGUF_REPO).status_code == 200
    assert loaded_ids(server) == ["pinned-minilm", GGUF_REPO]

    entry = server.client.get(f"/v1/models/{GGUF_REPO}").json()
    assert entry["loaded"] is True and entry["status"] == "running"
    not_cached = chat(server, "acme/not-downloaded")
    assert not_cached.status_code == 404


def test_load_on_demand_off_keeps_the_404(hub_server: HubServer) -> None:
    server = hub_server("server:\n  load_on_demand: false\nmodels: []\n")
    reply = server.client.post(
        "/v1/admin/download-model", json={"model_path": EMBEDDINGS_REPO}, timeout=120
    )
    assert reply.status_code == 200
    assert embed(server, EMBEDDINGS_REPO).status_code in (404, 503)
    assert loaded_ids(server) == []
