"""An engine in-process, in a worker subprocess with the handler's environment.

The baseline side of the server-vs-in-process groups: the worker module reads
one request per line on stdin and answers one JSON line (its first line says
it is ready; ``{"error": ...}`` fails the request); EOF ends it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import IO, Any

from bodega.registry.handler_env import handler_env

from .server import PROJECT_ROOT


class LineWorker:
    """``python -m MODULE ARGS...`` for ``engine``, spoken to line by line."""

    def __init__(self, module: str, args: list[str], engine: str, log: IO[bytes]) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=PROJECT_ROOT,
            env=handler_env(engine),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        self._read()

    @property
    def pid(self) -> int:
        """The worker process's pid."""
        return self._process.pid

    def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the in-process worker exited ({self._process.wait()})")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def ask(self, line: str) -> dict[str, Any]:
        """Send one request line and return the answer."""
        assert self._process.stdin is not None
        self._process.stdin.write(f"{line}\n")
        self._process.stdin.flush()
        return self._read()

    def close(self) -> None:
        """End the worker (killed if it does not leave within 30 s)."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def side_by_side(
    reps: int, server: Callable[[int], float], local: Callable[[int], float]
) -> list[tuple[float, float]]:
    """One warm-up of each, then ``reps`` (server, in-process) measures of
    request ``i``; which goes first alternates, so drift hits both alike."""
    server(0), local(0)
    pairs = []
    for i in range(reps):
        if i % 2 == 0:
            s, w = server(i), local(i)
        else:
            w, s = local(i), server(i)
        pairs.append((s, w))
    return pairs
