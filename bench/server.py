"""Server subprocesses for benchmarks (Bodega and its peers): free port, readiness, CPU time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx
import psutil

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The peer servers that need packages of their own (`make peers-env`).
PEERS_VENV = PROJECT_ROOT / ".venv-peers"
START_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0


class ServerError(RuntimeError):
    """The server did not start, or an admin call failed."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A server subprocess on a free port, its output in ``log_path``.

    ``argv(port)`` is its command line; it is ready when ``ready_path``
    answers 200. Use as a context manager: entering starts it and waits until
    it is ready, leaving sends SIGTERM (then SIGKILL after ``STOP_TIMEOUT``).
    """

    def __init__(
        self,
        name: str,
        argv: Callable[[int], list[str]],
        log_path: Path,
        *,
        ready_path: str = "/health",
        env: dict[str, str] | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._argv = argv(self.port)
        self._ready_path = ready_path
        self._env = env
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # --- lifecycle -------------------------------------------------------

    def start(self) -> None:
        """Spawn the server and block until ``ready_path`` answers 200."""
        self._log = open(self.log_path, "ab")
        env = dict(self._env if self._env is not None else os.environ)
        env["PYTHONPATH"] = str(PROJECT_ROOT) + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
        self._process = subprocess.Popen(
            self._argv,
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env=env,
        )
        deadline = time.monotonic() + self._start_timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                code = self._process.poll()
                if code is not None:
                    raise ServerError(f"{self.name} exited with code {code}; see {self.log_path}")
                try:
                    if client.get(self.base_url + self._ready_path).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        self.stop()
        raise ServerError(
            f"{self.name} not ready after {self._start_timeout:g} s; see {self.log_path}"
        )

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL if needed; close the log."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- measurement -----------------------------------------------------

    @property
    def pid(self) -> int:
        """The main process's pid."""
        if self._process is None:
            raise ServerError(f"{self.name} is not running")
        return self._process.pid

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU seconds (user + system) so far of the main process and of its children."""
        parent = psutil.Process(self.pid)
        times = parent.cpu_times()
        main = times.user + times.system
        children = 0.0
        for child in parent.children(recursive=True):
            try:
                t = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            children += t.user + t.system
        return main, children

    def log_size(self) -> int:
        """The log's size in bytes, to read what a later step appends."""
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        """The log text appended since ``offset``."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                return log.read().decode("utf-8", "replace")
        except OSError:
            return ""


class BodegaServer(ServerProcess):
    """``python -m bodega launch`` with ``extra_args``, and its admin API."""

    def __init__(
        self,
        log_path: Path,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        ready_path: str = "/health",
    ) -> None:
        args = extra_args or []
        super().__init__(
            "bodega",
            lambda port: [sys.executable, "-m", "bodega", "launch", "--port", str(port), *args],
            log_path,
            env=env,
            ready_path=ready_path,
        )

    # --- admin API -------------------------------------------------------

    def load_model(self, spec: dict[str, Any], timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """``POST /v1/admin/load-model``; returns the reply's ``model``."""
        reply = httpx.post(f"{self.base_url}/v1/admin/load-model", json=spec, timeout=timeout)
        if reply.status_code != 201:
            raise ServerError(f"load-model answered {reply.status_code}: {reply.text[:300]}")
        model: dict[str, Any] = reply.json()["model"]
        return model

    def unload_model(self, model_id: str) -> None:
        """``DELETE /v1/admin/unload-model/{id}``."""
        reply = httpx.delete(f"{self.base_url}/v1/admin/unload-model/{model_id}", timeout=60.0)
        if reply.status_code != 200:
            raise ServerError(f"unload-model answered {reply.status_code}: {reply.text[:300]}")
