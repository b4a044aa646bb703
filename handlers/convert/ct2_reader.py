"""Read a CTranslate2 ``model.bin``: a plain list of named tensors.

Layout (CTranslate2's ``ModelSpec._serialize``, little-endian): u32 binary
version, string spec name, u32 spec revision, u32 count, then per variable a
string name, u8 rank, u32 dims, u8 dtype id, u32 byte count and the raw
bytes; then u32 alias count and (alias, target) string pairs. A string is a
u16 length (including a trailing NUL) and the UTF-8 bytes with the NUL.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

# CTranslate2's DataType enum order (include/ctranslate2/types.h).
_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_NUMPY = {
    "float32": np.float32,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "float16": np.float16,
}
SUPPORTED_BINARY_VERSIONS = range(1, 7)


class CT2FormatError(ValueError):
    """The file is not a CTranslate2 model this reader understands."""


@dataclass
class CT2Model:
    """The tensors of a ``model.bin``, by name; aliases resolved."""

    spec: str
    revision: int
    variables: dict[str, npt.NDArray[np.generic]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> npt.NDArray[np.generic]:
        """A tensor by name or alias; CT2FormatError if absent."""
        name = self.aliases.get(name, name)
        try:
            return self.variables[name]
        except KeyError:
            raise CT2FormatError(f"the model has no variable {name!r}") from None

    def scalar(self, name: str) -> int:
        """An integer scalar variable (e.g. ``encoder/num_heads``)."""
        return int(self.get(name).reshape(-1)[0])


class _Reader:
    def __init__(self, f: BinaryIO, path: Path) -> None:
        self._f = f
        self._path = path

    def read(self, n: int) -> bytes:
        data = self._f.read(n)
        if len(data) != n:
            raise CT2FormatError(f"{self._path} is truncated")
        return data

    def u8(self) -> int:
        return int(self.read(1)[0])

    def u16(self) -> int:
        return int(struct.unpack("<H", self.read(2))[0])

    def u32(self) -> int:
        return int(struct.unpack("<I", self.read(4))[0])

    def string(self) -> str:
        raw = self.read(self.u16())
        try:
            return raw.rstrip(b"\0").decode("utf-8")
        except UnicodeDecodeError:
            raise CT2FormatError(f"{self._path} is not a CTranslate2 model") from None


def _array(raw: bytes, dtype: str, shape: list[int]) -> npt.NDArray[np.generic]:
    if dtype == "bfloat16":  # numpy has none: widen to float32
        half = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
        return half.view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=_NUMPY[dtype]).reshape(shape)


def read_ct2(path: str | Path) -> CT2Model:
    """Every variable of the CTranslate2 ``model.bin`` at ``path``."""
    path = Path(path)
    with open(path, "rb") as f:
        r = _Reader(f, path)
        version = r.u32()
        if version not in SUPPORTED_BINARY_VERSIONS:
            raise CT2FormatError(
                f"{path} is not a CTranslate2 model this reader knows (binary version {version})"
            )
        model = CT2Model(spec=r.string(), revision=r.u32())
        for _ in range(r.u32()):
            name = r.string()
            shape = [r.u32() for _ in range(r.u8())]
            type_id = r.u8()
            if type_id >= len(_DTYPES):
                raise CT2FormatError(f"{name}: unknown CTranslate2 data type {type_id}")
            dtype = _DTYPES[type_id]
            raw = r.read(r.u32())
            expected = int(np.prod(shape, dtype=np.int64)) * (
                2 if dtype == "bfloat16" else np.dtype(_NUMPY[dtype]).itemsize
            )
            if len(raw) != expected:
                raise CT2FormatError(f"{name}: {len(raw)} bytes for shape {shape} of {dtype}")
            model.variables[name] = _array(raw, dtype, shape)
        for _ in range(r.u32()):
            alias = r.string()
            model.aliases[alias] = r.string()
    return model
