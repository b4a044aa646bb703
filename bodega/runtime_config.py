"""The ``runtime:`` section: Simple Inference Server's device and per-endpoint
execution timeouts, from ``config.yaml``, its environment variables
(``MODEL_DEVICE``, ``EMBEDDING_GENERATE_TIMEOUT_SEC``,
``AUDIO_PROCESS_TIMEOUT_SEC``) and ``--device``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated

import msgspec
import trio
from msgspec import Meta

from bodega.env_overrides import Override, overridden, variable
from bodega.errors import ExecutionTimeout
from catalog.devices import DEVICE_PATTERN


class RuntimeSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``runtime:``: where engines run, and how long an embeddings or audio
    request may take once resolved (None: no limit) before it is a 504."""

    device: Annotated[str, Meta(pattern=DEVICE_PATTERN)] = "auto"
    embedding_timeout_sec: Annotated[float, Meta(gt=0)] | None = None
    audio_timeout_sec: Annotated[float, Meta(gt=0)] | None = None


# Simple Inference Server's variables -> ``runtime:`` keys.
RUNTIME_ENV_KEYS = {
    "MODEL_DEVICE": "device",
    "EMBEDDING_GENERATE_TIMEOUT_SEC": "embedding_timeout_sec",
    "AUDIO_PROCESS_TIMEOUT_SEC": "audio_timeout_sec",
}


def runtime_with_env(
    section: RuntimeSection, environ: Mapping[str, str], device: str | None = None
) -> RuntimeSection:
    """``section`` with the environment's values, then ``--device``; a
    ValueError naming the variable when one does not validate."""
    overrides: list[Override] = []
    for name, key in RUNTIME_ENV_KEYS.items():
        value = environ.get(name, "").strip()
        if value:
            overrides.append((variable(name), (key,), value.lower() if key == "device" else value))
    if device is not None:
        overrides.append(("--device", ("device",), device.strip().lower()))
    return overridden(section, overrides)


@contextmanager
def execution_limit(seconds: float | None, what: str) -> Iterator[None]:
    """Cancel the block after ``seconds`` (None: never) and raise a 504
    ExecutionTimeout naming ``what``; the cancel reaches the handler as a
    client disconnect does (``Model.stream`` leaves its request)."""
    if seconds is None:
        yield
        return
    try:
        with trio.fail_after(seconds):
            yield
    except trio.TooSlowError:
        raise ExecutionTimeout(
            f"{what} took longer than its {seconds:g} s execution timeout and was cancelled"
        ) from None
