"""Starting, configuring and stopping the server as an operator would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from bodega.settings import embedded_lm_path
from tests.helpers import (
    ROOT,
    Server,
    long_completion,
    sse_events,
    start_server,
    stop_server,
)


def launch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bodega", "launch", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("yaml_text", "named"),
    [
        ("server: {port: 1}\nmodels:\n  - model_id: a\n    model_pth: x\n", "model_pth"),
        ("server: {prot: 1}\n", "prot"),
        ("models:\n  - model_id: a\n", "model_path"),
        ("models:\n  - model_path: x\n    max_concurrency: many\n", "max_concurrency"),
        ("models: [\n", "YAML"),
        (
            "models:\n  - {model_id: a, model_path: x}\n  - {model_id: a, model_path: y}\n",
            "duplicate model_id",
        ),
    ],
)
def test_invalid_config_is_one_line_naming_the_key(
    tmp_path: Path, yaml_text: str, named: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml_text)
    started = time.monotonic()
    result = launch("--config", str(config))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert time.monotonic() - started < 20  # nothing was started


def test_missing_config_file(tmp_path: Path) -> None:
    result = launch("--config", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert "absent.yaml" in result.stderr


def test_model_that_cannot_load_stops_startup(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("models:\n  - {model_id: a, model_path: /no/such.gguf}\n")
    result = launch("--config", str(config), "--port", "0")
    assert result.returncode == 1
    assert "/no/such.gguf" in result.stderr


def test_config_from_env_with_two_models(tmp_path: Path) -> None:
    path = embedded_lm_path()
    config = tmp_path / "config.yaml"
    config.write_text(
        "server:\n  host: 127.0.0.1\n"
        "models:\n"
        f"  - {{model_id: one, model_path: '{path}', context_length: 1024}}\n"
        f"  - {{model_id: two, model_path: '{path}', context_length: 2048, max_concurrency: 2}}\n"
    )
    server = start_server(env={"BODEGA_INFERENCE_CONFIG": str(config)})
    try:
        data = server.client.get("/v1/admin/loaded-models").json()["data"]
        assert {m["id"]: m["context_length"] for m in data} == {"one": 1024, "two": 2048}
        r = server.client.post(
            "/v1/completions", json={"model": "current", "prompt": "Hi", "max_tokens": 1}
        )
        assert r.json()["model"] == "two"
    finally:
        assert stop_server(server) == 0


def test_model_flag(tmp_path: Path) -> None:
    server = start_server("--model", str(embedded_lm_path()), "--model-id", "flagged")
    try:
        assert [m["id"] for m in server.client.get("/v1/models").json()["data"]] == ["flagged"]
    finally:
        stop_server(server)


@pytest.mark.timeout(600)
def test_sigterm_lets_streams_finish_and_cleans_up(tmp_path: Path) -> None:
    """SIGTERM: the listening socket closes at once (new connections are
    refused, an idle kept-alive one is closed), the running stream finishes
    within graceful_timeout, then the handlers stop and the server exits 0."""
    config = tmp_path / "config.yaml"
    model = f"{{model_id: smollm2-135m, model_path: '{embedded_lm_path()}'}}"
    # Generous: a throttled CI machine has been seen taking 3 s per token.
    config.write_text(f"server: {{graceful_timeout: 240}}\nmodels:\n  - {model}\n")
    server = start_server("--config", str(config))
    pid = server.process.pid
    port = int(server.url.rsplit(":", 1)[1])
    handler_pid = server.model_info("smollm2-135m")["pid"]  # leaves a kept-alive connection
    runtime_dir = Path(f"/tmp/bodega-{pid}")
    assert runtime_dir.is_dir()
    texts: list[str] = []
    done = threading.Event()

    def stream() -> None:
        body = {**long_completion("smollm2-135m"), "max_tokens": 16}
        with httpx.Client(base_url=server.url, timeout=240) as client:
            with client.stream("POST", "/v1/completions", json=body) as r:
                for event in sse_events(r):
                    texts.append("[DONE]" if event == "[DONE]" else str(event.get("error", "")))
                    if len(texts) == 2:
                        done.set()
        done.set()

    thread = threading.Thread(target=stream)
    thread.start()
    assert done.wait(60)
    server.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 2  # at once: well before the stream ends
    refused = False
    while not refused and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(0.02)
        except ConnectionRefusedError:
            refused = True
    assert refused  # the listening socket is closed
    try:  # the idle kept-alive connection: closed, or a 503 that closes it
        reply = server.client.get("/health", timeout=5)
        assert reply.status_code == 503 and reply.headers["connection"] == "close"
    except httpx.TransportError:
        pass
    thread.join(240)
    assert texts[-1] == "[DONE]" and not any(texts[:-1])  # finished, no error event
    assert server.process.wait(60) == 0
    assert not psutil.pid_exists(handler_pid) or psutil.Process(handler_pid).status() == "zombie"
    assert not runtime_dir.exists()
    server.client.close()


def test_killed_server_leaves_no_orphan_handler() -> None:
    server = start_server()
    handler_pid = server.model_info("smollm2-135m")["pid"]
    server.process.kill()
    server.process.wait()
    deadline = time.monotonic() + 10
    while psutil.pid_exists(handler_pid) and time.monotonic() < deadline:
        if psutil.Process(handler_pid).status() == "zombie":
            break
        time.sleep(0.1)
    assert not psutil.pid_exists(handler_pid) or psutil.Process(handler_pid).status() == "zombie"
    # the next server sweeps what the dead one left behind
    stale = Path(f"/tmp/bodega-{server.process.pid}")
    assert stale.exists()
    nxt = start_server()
    try:
        assert not stale.exists()
    finally:
        stop_server(nxt)


def test_http_process_imports_no_engine() -> None:
    code = (
        "import sys, bodega.cli, bodega.app, bodega.registry.handler\n"
        "heavy = {'mlx', 'torch', 'xllamacpp', 'tokenizers', 'transformers', 'llama_cpp',\n"
        "         'ctranslate2', 'faster_whisper', 'mlx_whisper', 'av'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
def test_running_server_maps_no_engine_library(server: Server) -> None:
    maps = Path(f"/proc/{server.process.pid}/maps").read_text()
    assert "xllamacpp" not in maps and "libllama" not in maps
    handler_pid = server.model_info("smollm2-135m")["pid"]
    assert "xllamacpp" in Path(f"/proc/{handler_pid}/maps").read_text()


def test_convert_command(tmp_path: Path) -> None:
    out = tmp_path / "smol-mlx"
    done = subprocess.run(
        [sys.executable, "-m", "bodega", "convert", str(embedded_lm_path()), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in out.iterdir()
    }
    bad = subprocess.run(
        [sys.executable, "-m", "bodega", "convert", str(out / "config.json"), str(tmp_path / "x")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert "not a GGUF" in bad.stderr


def test_server_with_no_models_is_unhealthy(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("models: []\n")
    server = start_server("--config", str(config))
    try:
        health = server.client.get("/health")
        assert health.status_code == 503
        body = health.json()
        assert body.pop("timestamp")
        assert body == {"status": "unhealthy", "model_id": None, "model_status": "no_models"}
        r = server.client.post(
            "/v1/chat/completions",
            json={"model": "current", "messages": [{"role": "user", "content": "Hi"}]},
        )
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "no_model_loaded"
        assert server.client.get("/v1/models").json() == {"object": "list", "data": []}
        # a model loaded at runtime makes it healthy
        assert server.load("late").status_code == 201
        assert server.client.get("/health").json()["status"] == "ok"
    finally:
        assert stop_server(server) == 0


def test_mlx_model_from_the_local_hf_cache(tmp_path: Path) -> None:
    """A repo id resolves from the local Hugging Face cache (never downloaded)."""
    from handlers.convert.gguf_to_mlx import convert_gguf

    folder = convert_gguf(embedded_lm_path(), tmp_path / "converted")
    repo = tmp_path / "hf" / "hub" / "models--bodega-test--smol-mlx"
    snapshot = repo / "snapshots" / "0123456789abcdef"
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        (snapshot / file.name).symlink_to(file)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef")
    server = start_server(
        "--model",
        str(embedded_lm_path()),
        env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"},
    )
    try:
        r = server.client.post(
            "/v1/admin/load-model",
            json={"model_path": "bodega-test/smol-mlx", "model_id": "from-cache"},
            timeout=120,
        )
        assert r.status_code == 201, r.text
        assert r.json()["model"]["engine"] == "mlx"
        out = server.client.post(
            "/v1/chat/completions",
            json={
                "model": "from-cache",
                "messages": [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": "What is the capital of France?"},
                ],
                "temperature": 0,
                "max_tokens": 12,
            },
            timeout=120,
        ).json()
        assert "Paris" in out["choices"][0]["message"]["content"]
    finally:
        stop_server(server)
