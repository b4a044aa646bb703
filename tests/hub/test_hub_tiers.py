"""A tier that maps to a cached repo id loads it on demand."""

from __future__ import annotations

from tests.hub.conftest import GGUF_REPO, HubServer


def test_a_tier_loads_its_cached_repo_on_demand(hub_server: HubServer) -> None:
    server = hub_server(
        f"tiers:\n  medium: {GGUF_REPO}\n  heavy: acme/not-downloaded\nmodels: []\n"
    )
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    r = server.client.post("/v1/chat/completions", json={"model": "medium", **body})
    assert r.status_code == 404  # not in the cache yet: the tier has no model
    assert r.json()["error"]["message"] == "No models available for tier: medium"
    reply = server.client.post(
        "/v1/admin/download-model", json={"model_path": GGUF_REPO, "quant": "Q4_1"}, timeout=120
    )
    assert reply.status_code == 200, reply.text
    r = server.client.post("/v1/chat/completions", json={"model": "medium", **body}, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == GGUF_REPO
    ids = [m["id"] for m in server.client.get("/v1/admin/loaded-models").json()["data"]]
    assert ids == [GGUF_REPO]
    # A 7b-looking name routes to the medium tier, now loaded.
    r = server.client.post("/v1/chat/completions", json={"model": "mistral-7b", **body})
    assert r.status_code == 200 and r.json()["model"] == GGUF_REPO
    r = server.client.post("/v1/chat/completions", json={"model": "heavy", **body})
    assert r.json()["error"]["message"] == "No models available for tier: heavy"
