"""The inference-service catalog and presets, and Simple Inference Server's
device and execution timeouts, on one server over HTTP: a catalog with the
embedded GGUF as ``small`` (roles chat, coder) loaded at start by a preset,
``runtime.device: cpu``, and an embeddings model whose execution timeout
(``EMBEDDING_GENERATE_TIMEOUT_SEC``) is 1 ms."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bodega.settings import embedded_embeddings_path, embedded_lm_path
from tests.helpers import Server, chat_for, queue_stats, start_server, stop_server, wait_until

EMBEDDINGS = embedded_embeddings_path()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    gguf = Path(embedded_lm_path() or "")
    folder = tmp_path_factory.mktemp("catalog")
    (folder / "models.yaml").write_text(
        "models:\n"
        "  small:\n"
        f"    file: {gguf.name}\n"
        "    size: 0.1\n    ctx: 2048\n    quantization: Q4_1\n"
        "    roles: [chat, coder]\n    gpu_layers: 0\n"
        "  spare:\n"
        f"    file: {gguf.name}\n    ctx: 1024\n    roles: [thinker]\n"
    )
    (folder / "presets.yaml").write_text("presets:\n  S1:\n    models: [small]\n")
    models = (
        f"models:\n  - model_path: {EMBEDDINGS}\n    model_id: emb\n    model_type: embeddings\n"
        if EMBEDDINGS
        else ""
    )
    config = folder / "config.yaml"
    config.write_text(
        f"catalog:\n  models_file: models.yaml\n  presets_file: presets.yaml\n"
        f"  models_dir: {gguf.parent}\n"
        "runtime:\n  device: cpu\n" + models
    )
    env = {"INFERENCE_DEFAULT_PRESET": "S1", "EMBEDDING_GENERATE_TIMEOUT_SEC": "0.001"}
    launched = start_server("--config", str(config), env=env)
    try:
        yield launched
    finally:
        stop_server(launched)


def cards(server: Server) -> dict[str, dict[str, object]]:
    return {c["id"]: c for c in server.client.get("/v1/models").json()["data"]}


def test_the_preset_loads_at_start_and_the_list_shows_roles_and_memory(server: Server) -> None:
    listed = cards(server)
    small, spare = listed["small"], listed["spare"]
    assert small["loaded"] is True and small["status"] == "running"
    assert small["roles"] == ["chat", "coder"]
    assert isinstance(small["memory_mb"], int) and small["memory_mb"] > 50
    assert small["context_length"] == 2048
    # Not in the preset: listed as available, with its estimate.
    assert spare["loaded"] is False and spare["status"] == "available"
    assert spare["roles"] == ["thinker"]
    assert isinstance(spare["memory_mb"], int) and spare["memory_mb"] > 50
    # gpu_layers became n_gpu_layers.
    info = server.model_info("small")
    assert info["n_gpu_layers"] == 0


def test_unload_then_load_by_catalog_id(server: Server) -> None:
    gone = server.client.post("/v1/models/small/unload")
    assert gone.status_code == 200
    assert gone.json() == {
        "id": "small", "status": "available", "message": "Model 'small' unloaded successfully"
    }  # fmt: skip
    assert cards(server)["small"]["loaded"] is False
    back = server.client.post("/v1/models/small/load")
    assert back.status_code == 200
    assert back.json()["status"] == "loaded"
    assert back.json()["message"] == "Model 'small' loaded successfully"
    assert cards(server)["small"]["status"] == "running"
    again = server.client.post("/v1/models/small/load")
    assert again.json()["message"] == "Model 'small' is already loaded"


def test_an_unknown_catalog_id_is_404(server: Server) -> None:
    for action in ("load", "unload"):
        answer = server.client.post(f"/v1/models/nope/{action}")
        assert answer.status_code == 404
        assert "not in the catalog" in answer.json()["error"]["message"]


def test_a_role_name_routes_to_the_catalog_model(server: Server) -> None:
    answer = server.client.post("/v1/chat/completions", json=chat_for("coder", "Hi", max_tokens=2))
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == "small"
    # model "auto" leaves it to the router: task_type "code" asks for a coder.
    routed = server.client.post(
        "/v1/chat/completions", json=chat_for("auto", "Hi", max_tokens=2, task_type="code")
    )
    assert routed.status_code == 200, routed.text
    assert routed.json()["model"] == "small"
    # A role no loaded model plays loads the first catalog model with it.
    thinker = server.client.post(
        "/v1/chat/completions", json=chat_for("thinker", "Hi", max_tokens=2)
    )
    assert thinker.status_code == 200, thinker.text
    assert thinker.json()["model"] == "spare"
    assert server.client.post("/v1/models/spare/unload").status_code == 200
    unknown = server.client.post("/v1/chat/completions", json=chat_for("poet", "Hi"))
    assert unknown.status_code == 404


def test_device_cpu_loads_and_cuda_is_a_400_naming_it(server: Server) -> None:
    cpu = server.load("on-cpu", device="cpu")
    assert cpu.status_code == 201, cpu.text
    assert server.unload("on-cpu").status_code == 200
    cuda = server.load("on-cuda", device="cuda")
    assert cuda.status_code == 400
    assert "'cuda'" in cuda.json()["error"]["message"]
    bad = server.load("on-tpu", device="tpu")
    assert bad.status_code == 400 and "device" in bad.text


@pytest.mark.skipif(EMBEDDINGS is None, reason="the embedded embeddings model is not installed")
def test_an_embeddings_batch_past_its_timeout_is_504_and_cancelled(server: Server) -> None:
    if EMBEDDINGS is not None:
        batch = [f"sentence number {i} " * 40 for i in range(512)]
        answer = server.client.post("/v1/embeddings", json={"model": "emb", "input": batch})
        assert answer.status_code == 504
        assert answer.json()["error"]["code"] == "execution_timeout"
        # The work was cancelled: the model is idle again, and the server answers.
        wait_until(lambda: queue_stats(server, "emb")["running"] == 0)
        listed = server.client.get("/v1/models")
        assert listed.status_code == 200
        chat = server.client.post(
            "/v1/chat/completions", json=chat_for("small", "Hi", max_tokens=2)
        )
        assert chat.status_code == 200
