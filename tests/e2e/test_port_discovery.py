"""The LLM Service's process conveniences on real server processes: the
``.port`` file, ``PORT`` / ``HOST`` / ``LOG_LEVEL`` and ``.env``, and the
shutdown after ``SHUTDOWN_TIMEOUT`` idle seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bodega.settings import embedded_lm_path
from tests.helpers import ROOT, free_port, wait_until


def launch(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``bodega launch`` on the embedded model, in ``folder`` as working directory."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    for name in ("PORT", "HOST", "LOG_LEVEL", "SHUTDOWN_TIMEOUT"):
        if env is None or name not in env:
            environ.pop(name, None)
    command = [sys.executable, "-m", "bodega", "launch", "--model", str(embedded_lm_path())]
    log = (folder / "server.log").open("ab")
    return subprocess.Popen([*command, *args], cwd=folder, env=environ, stderr=log)


def wait_healthy(process: subprocess.Popen[bytes], port: int) -> None:
    """Wait until the server answers on ``port``."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, f"server exited with {process.returncode}"
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("server did not start")


def terminate(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM ``process`` and return its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()


def test_the_port_file_holds_the_port_while_serving(tmp_path: Path) -> None:
    port = free_port()
    process = launch(tmp_path, "--port", str(port))
    try:
        wait_healthy(process, port)
        assert (tmp_path / ".port").read_text().strip() == str(port)
    finally:
        code = terminate(process)
    assert code == 0
    assert not (tmp_path / ".port").exists()


def test_port_env_picks_the_port_and_a_flag_wins(tmp_path: Path) -> None:
    port, flag_port = free_port(), free_port()
    process = launch(tmp_path, env={"PORT": str(port)})
    try:
        wait_healthy(process, port)
        assert int((tmp_path / ".port").read_text()) == port
    finally:
        assert terminate(process) == 0
    process = launch(tmp_path, "--port", str(flag_port), env={"PORT": str(port)})
    try:
        wait_healthy(process, flag_port)
        assert int((tmp_path / ".port").read_text()) == flag_port
    finally:
        assert terminate(process) == 0


def test_dot_env_is_read(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / ".env").write_text(
        f"# the LLM Service's server settings\nPORT={port}\nHOST=127.0.0.1\nLOG_LEVEL=DEBUG\n"
        "ENABLE_CACHE=true  # cache on\n"
    )
    process = launch(tmp_path)
    try:
        wait_healthy(process, port)
        body = {"model": "current", "prompt": "Hello", "max_tokens": 4, "temperature": 0}
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/completions", json=body, timeout=60)
        assert answer.headers["X-Bodega-Cache"] == "miss"
    finally:
        assert terminate(process) == 0
    assert "DEBUG" in (tmp_path / "server.log").read_text()  # LOG_LEVEL from .env


def test_an_idle_server_shuts_down_by_itself(tmp_path: Path) -> None:
    port = free_port()
    process = launch(tmp_path, "--port", str(port), env={"SHUTDOWN_TIMEOUT": "3"})
    try:
        wait_healthy(process, port)
        assert process.wait(20) == 0
        assert not (tmp_path / ".port").exists()
    finally:
        terminate(process)


def test_a_busy_server_stays_up_until_idle(tmp_path: Path) -> None:
    port = free_port()
    process = launch(tmp_path, "--port", str(port), env={"SHUTDOWN_TIMEOUT": "3"})
    try:
        wait_healthy(process, port)
        busy_until = time.monotonic() + 7
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            while time.monotonic() < busy_until:
                assert client.get("/health").status_code == 200
                time.sleep(0.5)
        assert process.poll() is None  # 7 s busy > SHUTDOWN_TIMEOUT
        started_idle = time.monotonic()
        wait_until(lambda: process.poll() is not None, timeout=20, interval=0.1)
        assert process.returncode == 0
        assert time.monotonic() - started_idle >= 2  # not before the idle timeout
    finally:
        terminate(process)
