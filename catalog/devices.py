"""The ``device`` load option (Simple Inference Server's ``--device`` /
``MODEL_DEVICE``): ``cpu``, ``mps``, ``cuda``, ``cuda:N`` or ``auto``.

Only the parsing lives here (both processes import it); whether the device
exists is checked by the handler that opens the engine (handlers/device.py).
"""

from __future__ import annotations

import re

DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:[0-9]+)?)$"
_DEVICE = re.compile(DEVICE_PATTERN)


def parse_device(value: str) -> tuple[str, int | None]:
    """(kind, index) of a device name: ``cuda:1`` → ("cuda", 1); ValueError
    naming the value when it is none of the accepted names."""
    value = value.strip().lower()
    if not _DEVICE.match(value):
        raise ValueError(f"device {value!r} is not one of cpu, mps, cuda, cuda:N, auto")
    kind, _, index = value.partition(":")
    return kind, int(index) if index else None
