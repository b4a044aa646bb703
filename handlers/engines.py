"""Pick and open the engine a ``LoadSpec`` asks for."""

from __future__ import annotations

from pathlib import Path

from ipc.messages import LoadSpec

from .engine import Engine, LoadError
from .gguf import is_gguf


def resolve_engine(spec: LoadSpec) -> str:
    """The concrete engine name for ``spec`` (``auto`` decided by the files).

    GGUF files run on llama.cpp (the fast path on CPUs); MLX model folders and
    Hugging Face repo ids run on mlx-lm.
    """
    if spec.engine != "auto":
        return spec.engine
    if spec.model_type == "lm":
        return "llamacpp" if is_gguf(spec.model_path) else "mlx"
    raise LoadError(f"no engine serves model_type {spec.model_type!r} yet")


def open_engine(spec: LoadSpec) -> Engine:
    """Load the model of ``spec`` into the engine it names or implies."""
    engine = resolve_engine(spec)
    if spec.model_type == "lm" and engine == "llamacpp":
        if not Path(spec.model_path).exists():
            raise LoadError(f"model_path {spec.model_path!r} does not exist")
        from .lm_llamacpp import LlamaCppEngine

        return LlamaCppEngine(spec)
    if spec.model_type == "lm" and engine == "mlx":
        from .lm_mlx import MlxEngine

        return MlxEngine(spec)
    raise LoadError(f"engine {engine!r} cannot serve model_type {spec.model_type!r}")
