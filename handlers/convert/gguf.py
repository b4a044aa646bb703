"""Read a GGUF file's header: its metadata (catalog.gguf_meta) and its tensor table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.gguf_meta import (
    GGUFError,
    read_head,
    read_metadata,
    read_scalar,
    read_string,
    trained_context_length,
)

# The metadata reader lives in the catalog (the server reads it too).
__all__ = ["GGUFError", "read_head", "read_metadata", "trained_context_length"]

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
            name = read_string(f)
            n_dims = read_scalar(f, "I")
            if n_dims > 8:
                raise GGUFError(f"tensor {name!r} has {n_dims} dimensions: corrupt header")
            dims = [read_scalar(f, "Q") for _ in range(n_dims)]
            ggml_type = read_scalar(f, "I")
            read_scalar(f, "Q")  # offset
            tensors.append(TensorInfo(name, tuple(reversed(dims)), ggml_type))
    return meta, tensors
