"""The metadata at the head of a GGUF file (stdlib only: both processes read it:
the handler to load, the server to estimate a model's memory before it loads)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

from catalog.files import GGUF_MAGIC

# GGUF value types -> struct format of the scalar ones.
_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9
_MAX_STRING = 64 * 1024 * 1024  # chat templates are the longest strings, a few KiB


class GGUFError(ValueError):
    """The file is not a GGUF file this reader understands."""


def read_scalar(f: BinaryIO, fmt: str) -> Any:
    """One little-endian ``struct`` value."""
    size = struct.calcsize("<" + fmt)
    data = f.read(size)
    if len(data) != size:
        raise GGUFError("truncated GGUF header")
    return struct.unpack("<" + fmt, data)[0]


def read_string(f: BinaryIO) -> str:
    """A GGUF string: its u64 length, then UTF-8."""
    n = read_scalar(f, "Q")
    if n > _MAX_STRING:
        raise GGUFError(f"GGUF string of {n} bytes is implausible: corrupt header")
    data = f.read(n)
    if len(data) != n:
        raise GGUFError("truncated GGUF header")
    return data.decode("utf-8", errors="replace")


def _read_value(f: BinaryIO, vtype: int, skip_arrays: bool) -> Any:
    if vtype in _SCALARS:
        return read_scalar(f, _SCALARS[vtype])
    if vtype == _STRING:
        return read_string(f)
    if vtype == _ARRAY:
        item_type, count = read_scalar(f, "I"), read_scalar(f, "Q")
        if skip_arrays and item_type in _SCALARS:
            f.seek(count * struct.calcsize("<" + _SCALARS[item_type]), 1)
            return None
        items = [_read_value(f, item_type, skip_arrays) for _ in range(count)]
        return None if skip_arrays else items
    raise GGUFError(f"unknown GGUF value type {vtype}")


def read_head(f: BinaryIO, path: str | Path, *, skip_arrays: bool) -> tuple[int, dict[str, Any]]:
    """Read the header of an open GGUF file up to the tensor table.

    Returns the number of tensors and the metadata; ``f`` is left at the
    start of the tensor table.
    """
    if f.read(4) != GGUF_MAGIC:
        raise GGUFError(f"{path} is not a GGUF file")
    version = read_scalar(f, "I")
    if version < 2:
        raise GGUFError(f"GGUF version {version} is not supported")
    n_tensors, n_kv = read_scalar(f, "Q"), read_scalar(f, "Q")
    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key = read_string(f)
        meta[key] = _read_value(f, read_scalar(f, "I"), skip_arrays)
    return n_tensors, meta


def read_metadata(path: str | Path, *, skip_arrays: bool = True) -> dict[str, Any]:
    """Return the metadata of a GGUF file; arrays are ``None`` unless asked for."""
    with open(path, "rb") as f:
        return read_head(f, path, skip_arrays=skip_arrays)[1]


def trained_context_length(meta: dict[str, Any]) -> int | None:
    """The context length the model was trained with, when the file says."""
    arch = meta.get("general.architecture")
    value = meta.get(f"{arch}.context_length")
    return int(value) if value else None
