"""Pick and open the engine a ``LoadSpec`` asks for."""

from __future__ import annotations

from pathlib import Path

from ipc.messages import LoadSpec

from .engine import Engine, LoadError
from .gguf import is_gguf


def resolve_engine(spec: LoadSpec) -> str:
    """The concrete engine name for ``spec`` (``auto`` decided by the files)."""
    if spec.engine != "auto":
        return spec.engine
    if spec.model_type == "lm" and is_gguf(spec.model_path):
        return "llamacpp"
    raise LoadError(
        f"no engine can load {spec.model_path!r} as model_type {spec.model_type!r} "
        "on this platform; GGUF files run on llama.cpp"
    )


def open_engine(spec: LoadSpec) -> Engine:
    """Load the model of ``spec`` into the engine it names or implies."""
    if not Path(spec.model_path).exists():
        raise LoadError(f"model_path {spec.model_path!r} does not exist")
    engine = resolve_engine(spec)
    if spec.model_type == "lm" and engine == "llamacpp":
        from .lm_llamacpp import LlamaCppEngine

        return LlamaCppEngine(spec)
    raise LoadError(f"engine {engine!r} cannot serve model_type {spec.model_type!r}")
