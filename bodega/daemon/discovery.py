"""The LLM Service's process conveniences: a ``.env`` file, the ``.port`` file
and the shutdown after an idle while."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from urllib.parse import urlsplit

import trio

log = logging.getLogger("bodega")


def parse_env_file(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export`` allowed, ``#`` comments, quoted values)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if value[:1] in ("'", '"') and value[:1] in value[1:]:
            value = value[1 : value.index(value[0], 1)]
        elif " #" in value:
            value = value[: value.index(" #")].rstrip()
        if key:
            values[key] = value
    return values


def load_env_file(path: Path, environ: MutableMapping[str, str]) -> list[str]:
    """Set the variables of ``path`` that ``environ`` lacks (the real
    environment wins, as with python-dotenv); returns the names set."""
    try:
        text = path.read_text()
    except OSError:
        return []
    values = parse_env_file(text)
    added = [k for k in values if k not in environ]
    for key in added:
        environ[key] = values[key]
    return added


def bound_port(binds: list[str]) -> int | None:
    """The port of Hypercorn's first bind (``http://127.0.0.1:44468``)."""
    for bind in binds:
        port = urlsplit(bind).port
        if port is not None:
            return port
    return None


def write_port_file(path: Path, port: int) -> None:
    """Write ``port`` to ``path`` whole (a reader never sees half a number)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(f"{port}\n")
    os.replace(temporary, path)


def remove_port_file(path: Path, port: int) -> None:
    """Remove ``path`` when it still names ``port``: another server started in
    the same folder since keeps its own file."""
    try:
        if path.read_text().strip() == str(port):
            path.unlink()
    except OSError:
        pass


async def shutdown_when_idle(
    timeout: float,
    in_flight: Callable[[], int],
    last_request: Callable[[], float],
    stop: trio.Event,
) -> None:
    """Set ``stop`` once no request has run for ``timeout`` seconds."""
    while not stop.is_set():
        idle = time.monotonic() - last_request()
        if in_flight() == 0 and idle >= timeout:
            log.info("no request for %g s: shutting down", timeout)
            stop.set()
            return
        await trio.sleep(min(1.0, timeout) if in_flight() else max(0.05, timeout - idle))
