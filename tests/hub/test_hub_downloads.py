"""Downloads, the cached model list and deletion, through a real server
whose hub is the local stand-in (nothing reaches huggingface.co)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import sse_events
from tests.hub.conftest import (
    BIG_FILE,
    BIG_REPO,
    EMBEDDINGS_REPO,
    GGUF_REPO,
    HubServer,
    MiB,
    big_payload,
)
from tests.hub_standin import HubStandIn


def download(client: httpx.Client, repo: str, **fields: Any) -> httpx.Response:
    return client.post("/v1/admin/download-model", json={"model_path": repo, **fields}, timeout=120)


def card(client: httpx.Client, repo: str) -> dict[str, Any]:
    data = client.get("/v1/models").json()["data"]
    found = [m for m in data if m["id"] == repo]
    assert found, f"{repo} is not listed: {[m['id'] for m in data]}"
    return found[0]


def file_gets(hub: HubStandIn, repo: str, name: str) -> list[str | None]:
    """The Range headers of every GET of one file."""
    path = f"/{repo}/resolve/"
    return [
        r
        for m, p, r in list(hub.requests)
        if m == "GET" and p.startswith(path) and p.endswith(name)
    ]


def test_download_lists_the_repo_as_complete(hub_server: HubServer) -> None:
    server = hub_server()
    reply = download(server.client, EMBEDDINGS_REPO)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["status"] == "completed"
    assert "model.safetensors" in body["files"] and "1_Pooling/config.json" in body["files"]
    assert (Path(body["local_path"]) / "modules.json").is_file()
    assert body["size_bytes"] > 90_000_000

    entry = card(server.client, EMBEDDINGS_REPO)
    assert entry["object"] == "model" and entry["owned_by"] == "acme"
    assert entry["is_complete"] is True and entry["download_percentage"] == 100.0
    assert 0.09 < entry["size_gb"] < 0.1
    assert entry["model_type"] == "embeddings" and entry["engines"] == ["sentence-transformers"]
    assert entry["loaded"] is False and entry["status"] == "cached"
    assert entry["created"] > 1_700_000_000

    one = server.client.get(f"/v1/models/{EMBEDDINGS_REPO}").json()
    assert one["id"] == EMBEDDINGS_REPO and one["is_complete"] is True

    verified = server.client.get("/v1/models", params={"verify_with_hub": "true"}).json()["data"]
    entry = next(m for m in verified if m["id"] == EMBEDDINGS_REPO)
    assert entry["hub_verified"] is True and entry["is_complete"] is True
    assert server.client.get("/v1/models", params={"verify_with_hub": "maybe"}).status_code == 400

    # The same cache without a hub: the cache view, and a field saying why not verified.
    offline = hub_server(
        HF_HOME=str(Path(body["local_path"]).parents[3]), HF_ENDPOINT="http://127.0.0.1:9"
    )
    entry = next(
        m
        for m in offline.client.get("/v1/models?verify_with_hub=true").json()["data"]
        if m["id"] == EMBEDDINGS_REPO
    )
    assert entry["hub_verified"] is False and "could not be reached" in entry["hub_error"]
    assert entry["is_complete"] is True
    unreachable = download(offline.client, "acme/other")
    assert unreachable.status_code == 502, unreachable.text
    assert "could not be reached" in unreachable.json()["error"]["message"]


def test_a_gguf_repo_needs_a_quantization(hub: HubStandIn, hub_server: HubServer) -> None:
    server = hub_server()
    reply = download(server.client, GGUF_REPO)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "filename"
    assert "Q4_1.gguf" in error["message"] and "Q8_0.gguf" in error["message"]
    assert download(server.client, GGUF_REPO, quant="Q5_K_M").status_code == 400

    reply = download(server.client, GGUF_REPO, quant="q8_0")
    assert reply.status_code == 200, reply.text
    assert reply.json()["files"] == ["README.md", "SmolLM2-135M-Instruct.Q8_0.gguf"]
    assert reply.json()["local_path"].endswith("SmolLM2-135M-Instruct.Q8_0.gguf")
    assert file_gets(hub, GGUF_REPO, "Q4_1.gguf") == []
    entry = card(server.client, GGUF_REPO)
    assert entry["model_type"] == "lm" and entry["engines"] == ["llamacpp"]
    assert entry["is_complete"] is True


def test_progress_stream_shared_download_and_no_half_written_listing(
    hub: HubStandIn, hub_server: HubServer
) -> None:
    server = hub_server()
    hub.throttle_bytes_per_s = 8 * MiB  # about 3 s for the 24 MiB file
    events: list[Any] = []
    seen_progress = threading.Event()

    def stream() -> None:
        with server.client.stream(
            "POST", "/v1/admin/download-model-stream", json={"model_path": BIG_REPO}, timeout=120
        ) as response:
            assert response.status_code == 200
            for item in sse_events(response):
                events.append(item)
                if isinstance(item, dict) and item.get("progress", 0) > 0:
                    seen_progress.set()

    started = time.monotonic()
    thread = threading.Thread(target=stream)
    thread.start()
    assert seen_progress.wait(60)
    # Half-written: listed, never as complete.
    entry = card(server.client, BIG_REPO)
    assert entry["is_complete"] is False and entry["status"] == "incomplete"
    assert entry["download_percentage"] < 100
    # A second request for the same repo joins the running download.
    joined = download(server.client, BIG_REPO)
    thread.join(60)
    elapsed = time.monotonic() - started
    assert joined.status_code == 200, joined.text
    assert len(file_gets(hub, BIG_REPO, BIG_FILE)) == 1

    assert events[-1] == "[DONE]"
    progress = events[:-1]
    assert progress[-1]["status"] == "completed" and progress[-1]["progress"] == 100.0
    assert progress[-1]["downloaded_files"] == progress[-1]["total_files"] == 2
    middle = [e for e in progress if e["status"] == "downloading"]
    assert any(0 < e["progress"] < 100 for e in middle)
    assert any(e.get("current_file") == BIG_FILE and 0 < e["file_progress"] < 100 for e in middle)
    values = [e["progress"] for e in progress]
    assert values == sorted(values)
    assert all(
        {"status", "progress", "file_progress", "total_files", "message"} <= e.keys()
        for e in progress
    )
    assert len(progress) <= 5 * elapsed + 2
    assert card(server.client, BIG_REPO)["is_complete"] is True


def test_a_cut_transfer_resumes_with_a_range_request(
    hub: HubStandIn, hub_server: HubServer
) -> None:
    server = hub_server()
    hub.cut_after(f"{BIG_REPO}/{BIG_FILE}", 15 * MiB)
    reply = download(server.client, BIG_REPO)
    assert reply.status_code == 200, reply.text
    ranges = file_gets(hub, BIG_REPO, BIG_FILE)[-2:]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert int(ranges[1].removeprefix("bytes=").rstrip("-")) >= 10 * MiB  # not from zero
    path = Path(reply.json()["local_path"]) / BIG_FILE
    assert path.read_bytes() == big_payload()


def test_hub_errors_are_clear(hub_server: HubServer) -> None:
    server = hub_server()
    unknown = download(server.client, "acme/no-such-model")
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "model_path"
    gated = download(server.client, "acme/gated")
    assert gated.status_code == 401, gated.text
    assert "restricted" in gated.json()["error"]["message"]
    assert "HF_TOKEN" in gated.json()["error"]["message"]
    huge = download(server.client, "acme/huge")
    assert huge.status_code == 507, huge.text
    assert "needs" in huge.json()["error"]["message"] and "free" in huge.json()["error"]["message"]
    revision = download(server.client, EMBEDDINGS_REPO, revision="v9")
    assert revision.status_code == 404 and revision.json()["error"]["param"] == "revision"
    local = download(server.client, "/tmp/model")
    assert local.status_code == 400 and local.json()["error"]["param"] == "model_path"
    stream = server.client.post("/v1/admin/download-model-stream", json={"model_path": "acme/huge"})
    assert stream.status_code == 507
    assert card_ids(server) == []  # nothing half-written appears


def card_ids(server: Any) -> list[str]:
    return [m["id"] for m in server.client.get("/v1/models").json()["data"]]


def test_gated_repo_with_a_token(hub: HubStandIn, hub_server: HubServer) -> None:
    server = hub_server(HF_TOKEN=hub.token)
    assert download(server.client, "acme/gated").status_code == 200


def test_delete_removes_every_file(hub_server: HubServer, tmp_path: Path) -> None:
    server = hub_server()
    assert download(server.client, BIG_REPO).status_code == 200
    folder = tmp_path / "hf" / "hub" / "models--acme--big"
    assert folder.is_dir()
    reply = server.client.delete(f"/v1/models/{BIG_REPO}")
    assert reply.status_code == 200
    assert reply.json() == {"id": BIG_REPO, "object": "model", "deleted": True}
    assert not folder.exists()
    assert server.client.get(f"/v1/models/{BIG_REPO}").status_code == 404
    assert server.client.delete(f"/v1/models/{BIG_REPO}").status_code == 404


def test_a_client_that_leaves_the_stream_does_not_stop_the_download(
    hub: HubStandIn, hub_server: HubServer
) -> None:
    server = hub_server()
    hub.throttle_bytes_per_s = 8 * MiB
    with server.client.stream(
        "POST", "/v1/admin/download-model-stream", json={"model_path": BIG_REPO}, timeout=60
    ) as response:
        first = next(iter(sse_events(response)))
        assert first["status"] == "downloading"
    # Gone: the download goes on in the background and completes.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not card(server.client, BIG_REPO)["is_complete"]:
        time.sleep(0.2)
    entry = card(server.client, BIG_REPO)
    assert entry["is_complete"] is True and entry["download_percentage"] == 100.0
    assert len(file_gets(hub, BIG_REPO, BIG_FILE)) == 1
