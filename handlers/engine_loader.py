"""Pick and open the engine a model's ``LoadOptions`` ask for."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from catalog.engines import NoEngine
from catalog.engines import resolve_engine as _resolve_engine
from catalog.options import LoadOptions
from handlers.engine_protocol import Engine, LoadError

# (model_type, engine) -> (module, class, the heavy libraries it loads with).
# Engine modules import their libraries lazily; a handler that waits for the
# server's go (a restart's backoff) imports them first: mlx_lm alone takes
# over two seconds on 2 cores.
ENGINE_CLASSES: dict[tuple[str, str], tuple[str, str, tuple[str, ...]]] = {
    ("lm", "llamacpp"): ("handlers.lm.llamacpp_engine", "LlamaCppEngine", ("xllamacpp",)),
    ("lm", "mlx"): ("handlers.lm.mlx_engine", "MlxEngine", ("mlx_lm",)),
    ("embeddings", "sentence-transformers"): (
        "handlers.embeddings.st_engine",
        "SentenceTransformerEngine",
        ("sentence_transformers",),
    ),
    ("rerank", "cross-encoder"): (
        "handlers.embeddings.rerank",
        "CrossEncoderEngine",
        ("sentence_transformers",),
    ),
    ("rerank", "bi-encoder"): (
        "handlers.embeddings.rerank",
        "BiEncoderRerankEngine",
        ("sentence_transformers",),
    ),
    ("whisper", "faster-whisper"): (
        "handlers.whisper.ct2_engine",
        "FasterWhisperEngine",
        ("faster_whisper",),
    ),
    ("whisper", "mlx"): ("handlers.whisper.mlx_engine", "MlxWhisperEngine", ("mlx_whisper",)),
}


def resolve_engine(spec: LoadOptions) -> str:
    """The concrete engine name for ``spec`` (``auto`` decided by the files, as
    the server decides it: catalog.engines)."""
    try:
        return _resolve_engine(spec.model_type, spec.engine, spec.model_path)
    except NoEngine as exc:
        raise LoadError(str(exc)) from None


def engine_class(spec: LoadOptions) -> Callable[[LoadOptions], Engine]:
    """The engine class for ``spec``, its module imported."""
    engine = resolve_engine(spec)
    try:
        module, name, _ = ENGINE_CLASSES[(spec.model_type, engine)]
    except KeyError:
        raise LoadError(f"engine {engine!r} cannot serve model_type {spec.model_type!r}") from None
    cls: Callable[[LoadOptions], Engine] = getattr(importlib.import_module(module), name)
    return cls


def import_engine(spec: LoadOptions) -> None:
    """Import everything ``spec``'s engine loads with: the slow part of a
    handler's start that needs no model yet."""
    engine_class(spec)
    for library in ENGINE_CLASSES[(spec.model_type, resolve_engine(spec))][2]:
        importlib.import_module(library)


def open_engine(spec: LoadOptions) -> Engine:
    """Load the model of ``spec`` into the engine it names or implies."""
    cls = engine_class(spec)
    if resolve_engine(spec) == "llamacpp" and not Path(spec.model_path).exists():
        raise LoadError(f"model_path {spec.model_path!r} does not exist")
    return cls(spec)
