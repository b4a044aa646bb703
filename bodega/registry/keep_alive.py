"""``keep_alive``: how long an idle model stays loaded, per model and per request.

A request may carry ``keep_alive`` as Ollama takes it: seconds as a number,
a duration string (``"30s"``, ``"5m"``, ``"1h30m"``, Go's
``time.ParseDuration`` units) or a number in a string; any negative value
keeps the model loaded forever, ``0`` unloads it as soon as it is idle. It
replaces the model's ``keep_alive`` from that request on, as in Ollama;
pinned models stay pinned. Services call ``apply_keep_alive`` once the
model is resolved; ``expire_forever`` unloads what ran out.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from typing import TYPE_CHECKING

import msgspec
import trio

from bodega.errors import InvalidRequest, ModelNotFound

if TYPE_CHECKING:
    from .model import Model
    from .registry import Registry

log = logging.getLogger(__name__)

FOREVER = -1.0
# Longer than this (about 31 years) is forever.
MAX_SECONDS = 1e9
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_UNITS["h"] = 3600.0
_PART = r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)"
_DURATION = re.compile(rf"([+-]?)((?:{_PART})+)")


def keep_alive_seconds(value: float | str | None) -> float | None:
    """``value`` in seconds (``FOREVER`` for a negative one), None when
    absent; a 400 naming ``keep_alive`` when it is no duration."""
    if value is None:
        return None
    seconds = float(value) if not isinstance(value, str) else _parse(value.strip())
    if math.isnan(seconds):
        raise _invalid(value)
    return FOREVER if seconds < 0 or seconds > MAX_SECONDS else seconds


def _parse(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        match = _DURATION.fullmatch(text)
        if match is None:
            raise _invalid(text) from None
        sign = -1.0 if match.group(1) == "-" else 1.0
        parts = re.findall(_PART, match.group(2))
        return sign * sum(float(number) * _UNITS[unit] for number, unit in parts)
    if math.isinf(seconds):
        raise _invalid(text)
    return seconds


def _invalid(value: object) -> InvalidRequest:
    return InvalidRequest(
        f"keep_alive {value!r} is not a duration: give seconds (a number; negative keeps "
        'the model loaded, 0 unloads it when idle) or a string such as "30s", "5m", "1h"',
        param="keep_alive",
    )


def apply_keep_alive(model: Model, value: float | str | None) -> None:
    """Make ``value`` (a request's ``keep_alive``; None: leave it) the model's
    keep_alive from now on; it counts from the end of the request."""
    seconds = keep_alive_seconds(value)
    if seconds is None or seconds == model.spec.keep_alive:
        return
    model.spec = msgspec.structs.replace(model.spec, keep_alive=seconds)
    model.last_used = time.monotonic()


class Expiry:
    """Unloads idle models past ``last_used + keep_alive``.

    A model is unloaded when two checks in a row find it expired and idle
    with the same ``last_used``: a request between being resolved and being
    admitted (keep_alive 0, or the gap between streamed choices) moves
    ``last_used`` or makes it busy, so it is never unloaded under it.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._seen: dict[str, float] = {}

    async def check(self) -> list[str]:
        """One check; the ids unloaded."""
        now = time.monotonic()
        expired = []
        for model in self.registry.models:
            left = model.expires_in(now)
            if left is None or left > 0 or model.status != "running" or model.busy:
                self._seen.pop(model.id, None)
            elif self._seen.get(model.id) == model.last_used:
                expired.append(model.id)
            else:
                self._seen[model.id] = model.last_used
        for model_id in expired:
            self._seen.pop(model_id, None)
            log.info("unloading %s: idle past its keep_alive", model_id)
            with contextlib.suppress(ModelNotFound):  # unloaded meanwhile
                await self.registry.unload(model_id)
        return expired

    async def run(self, interval: float = 0.25) -> None:
        """``check`` every ``interval`` seconds (in the server's nursery)."""
        while True:
            await trio.sleep(interval)
            await self.check()
