"""Read the key/value metadata at the head of a GGUF file (no tensors)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
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


def _read(f: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize("<" + fmt)
    data = f.read(size)
    if len(data) != size:
        raise GGUFError("truncated GGUF header")
    return struct.unpack("<" + fmt, data)[0]


def _read_string(f: BinaryIO) -> str:
    n = _read(f, "Q")
    if n > _MAX_STRING:
        raise GGUFError(f"GGUF string of {n} bytes is implausible: corrupt header")
    data = f.read(n)
    if len(data) != n:
        raise GGUFError("truncated GGUF header")
    return data.decode("utf-8", errors="replace")


def _read_value(f: BinaryIO, vtype: int, skip_arrays: bool) -> Any:
    if vtype in _SCALARS:
        return _read(f, _SCALARS[vtype])
    if vtype == _STRING:
        return _read_string(f)
    if vtype == _ARRAY:
        item_type, count = _read(f, "I"), _read(f, "Q")
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
    version = _read(f, "I")
    if version < 2:
        raise GGUFError(f"GGUF version {version} is not supported")
    n_tensors, n_kv = _read(f, "Q"), _read(f, "Q")
    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key = _read_string(f)
        meta[key] = _read_value(f, _read(f, "I"), skip_arrays)
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


# GGML tensor types by id (for messages).
GGML_TYPE_NAMES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    8: "Q8_0",
    6: "Q5_0",
    7: "Q5_1",
    9: "Q8_1",
    10: "Q2_K",
    11: "Q3_K",
    12: "Q4_K",
    13: "Q5_K",
    14: "Q6_K",
    15: "Q8_K",
    16: "IQ2_XXS",
    17: "IQ2_XS",
    18: "IQ3_XXS",
    19: "IQ1_S",
    20: "IQ4_NL",
    21: "IQ3_S",
    22: "IQ2_S",
    23: "IQ4_XS",
    24: "I8",
    25: "I16",
    26: "I32",
    27: "I64",
    28: "F64",
    29: "IQ1_M",
    30: "BF16",
    34: "TQ1_0",
    35: "TQ2_0",
    39: "MXFP4",
}


@dataclass(frozen=True)
class TensorInfo:
    """One entry of a GGUF tensor table (``shape`` in numpy order)."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int

    @property
    def type_name(self) -> str:
        return GGML_TYPE_NAMES.get(self.ggml_type, f"type {self.ggml_type}")


def read_header(path: str | Path) -> tuple[dict[str, Any], list[TensorInfo]]:
    """The metadata (arrays included, as lists) and the tensor table of a GGUF file."""
    with open(path, "rb") as f:
        n_tensors, meta = read_head(f, path, skip_arrays=False)
        tensors = []
        for _ in range(n_tensors):
            name = _read_string(f)
            n_dims = _read(f, "I")
            if n_dims > 8:
                raise GGUFError(f"tensor {name!r} has {n_dims} dimensions: corrupt header")
            dims = [_read(f, "Q") for _ in range(n_dims)]
            ggml_type = _read(f, "I")
            _read(f, "Q")  # offset
            tensors.append(TensorInfo(name, tuple(reversed(dims)), ggml_type))
    return meta, tensors
