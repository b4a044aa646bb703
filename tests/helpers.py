"""Helpers for tests that talk to a real server process."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bodega.settings import embedded_lm_path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A ``python -m bodega launch`` subprocess and an HTTP client for it."""

    process: subprocess.Popen[bytes]
    url: str
    client: httpx.Client
    loaded: list[str] = field(default_factory=list)

    def load(self, model_id: str, **options: Any) -> httpx.Response:
        """Load the embedded model under ``model_id`` with ``options``."""
        body = {"model_path": embedded_lm_path(), "model_id": model_id, **options}
        response = self.client.post("/v1/admin/load-model", json=body, timeout=120)
        if response.status_code == 201:
            self.loaded.append(model_id)
        return response

    def unload(self, model_id: str) -> httpx.Response:
        """Unload ``model_id``."""
        return self.client.delete(f"/v1/admin/unload-model/{model_id}", timeout=30)

    def model_info(self, model_id: str) -> dict[str, Any]:
        """The loaded-models entry of ``model_id``."""
        data = self.client.get("/v1/admin/loaded-models").json()["data"]
        return next(m for m in data if m["id"] == model_id)


def start_server(
    *args: str,
    env: dict[str, str] | None = None,
    port: int | None = None,
    log_path: Path | None = None,
) -> Server:
    """Start a server and wait until ``/health`` answers; its stderr goes to
    ``log_path`` when given."""
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bodega", "launch", "--port", str(port), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stderr=log_path.open("ab") if log_path is not None else None,
    )
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, timeout=60)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            client.get("/health")
            return Server(process, url, client)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")


def stop_server(server: Server) -> int:
    """SIGTERM the server and wait for it; returns its exit code."""
    server.client.close()
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


def sse_events(response: httpx.Response) -> Iterator[Any]:
    """Decoded ``data:`` events of an SSE response; ``"[DONE]"`` as a string."""
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            yield data if data == "[DONE]" else json.loads(data)


SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


def chat_body(content: str, **extra: Any) -> dict[str, Any]:
    """A chat request body with the usual system prompt."""
    return {
        "model": "current",
        "messages": [SYSTEM, {"role": "user", "content": content}],
        **extra,
    }


def long_completion(model: str, **extra: Any) -> dict[str, Any]:
    """A streaming completion that keeps generating for many seconds."""
    return {
        "model": model,
        "prompt": "Count: 1, 2, 3,",
        "max_tokens": 3000,
        "temperature": 0,
        "stream": True,
        **extra,
    }


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def queue_stats(server: Server, model_id: str) -> dict[str, Any]:
    """``/v1/queue/stats`` of one model."""
    stats: dict[str, Any] = server.client.get("/v1/queue/stats").json()
    return stats["queue_stats"]["models"][model_id]  # type: ignore[no-any-return]


def chat_for(model: str, content: str, **extra: Any) -> dict[str, Any]:
    """``chat_body`` for a given model id."""
    return chat_body(content, model=model, **extra)


def silence_wav(seconds: float = 1.0) -> bytes:
    """A mono 16 kHz WAV of silence."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * int(16000 * seconds))
    return out.getvalue()


def idle_after_leaving(server: Server, model: str, body: dict[str, Any], step: int) -> float:
    """Stream the image generation ``body``, leave once progress reaches
    ``step``, and return the seconds until ``model`` runs nothing."""
    marker = f'"step":{step}'
    with server.client.stream("POST", "/v1/images/generations", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and marker in line.replace(" ", ""):
                break
    left = time.monotonic()
    wait_until(lambda: queue_stats(server, model)["running"] == 0, timeout=30)
    return time.monotonic() - left
