"""Pick and open the engine a model's ``LoadOptions`` ask for."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from catalog.engines import NoEngine
from catalog.engines import resolve_engine as _resolve_engine
from catalog.options import LoadOptions
from handlers.engine_protocol import Engine, LoadError


@dataclass(frozen=True)
class EngineEntry:
    """Where an engine's class lives, and what its handler process imports.

    ``libraries``: what the engine loads with, imported while the handler
    waits for the server's go (a restart's backoff). ``unused``: libraries
    its dependencies import when installed that it never uses; they are kept
    out of its process (transformers imports torch: 2 s and 200 MB of an MLX
    handler's start for nothing).
    """

    module: str
    cls: str
    libraries: tuple[str, ...] = ()
    unused: tuple[str, ...] = ()


# Engine modules import their libraries lazily (mlx_lm alone takes seconds).
ENGINE_CLASSES: dict[tuple[str, str], EngineEntry] = {
    ("lm", "llamacpp"): EngineEntry(
        "handlers.lm.llamacpp_engine", "LlamaCppEngine", ("xllamacpp",)
    ),
    ("multimodal", "llamacpp"): EngineEntry(
        "handlers.lm.llamacpp_engine", "LlamaCppEngine", ("xllamacpp",)
    ),
    ("multimodal", "mlx"): EngineEntry(
        "handlers.vision.mlx_vlm_engine", "MlxVlmEngine", ("mlx_vlm", "mlx_lm")
    ),
    ("lm", "mlx"): EngineEntry("handlers.lm.mlx_engine", "MlxEngine", ("mlx_lm",), ("torch",)),
    **{
        (kind, "diffusers"): EngineEntry(
            "handlers.images.diffusers_engine", "DiffusersEngine", ("diffusers",)
        )
        for kind in ("image-generation", "image-edit")
    },
    **{
        (kind, "mflux"): EngineEntry(
            "handlers.images.mflux_engine",
            "MfluxEngine",
            ("mflux.models.flux.variants.txt2img.flux",),
            ("torch",),
        )
        for kind in ("image-generation", "image-edit")
    },
    ("embeddings", "sentence-transformers"): EngineEntry(
        "handlers.embeddings.st_engine", "SentenceTransformerEngine", ("sentence_transformers",)
    ),
    ("rerank", "cross-encoder"): EngineEntry(
        "handlers.embeddings.rerank", "CrossEncoderEngine", ("sentence_transformers",)
    ),
    ("rerank", "bi-encoder"): EngineEntry(
        "handlers.embeddings.rerank", "BiEncoderRerankEngine", ("sentence_transformers",)
    ),
    ("whisper", "faster-whisper"): EngineEntry(
        "handlers.whisper.ct2_engine", "FasterWhisperEngine", ("faster_whisper",)
    ),
    ("whisper", "mlx"): EngineEntry(
        "handlers.whisper.mlx_engine", "MlxWhisperEngine", ("mlx_whisper",)
    ),
}


def resolve_engine(spec: LoadOptions) -> str:
    """The concrete engine name for ``spec`` (``auto`` decided by the files, as
    the server decides it: catalog.engines)."""
    try:
        return _resolve_engine(spec.model_type, spec.engine, spec.model_path)
    except NoEngine as exc:
        raise LoadError(str(exc)) from None


def _entry(spec: LoadOptions, engine: str) -> EngineEntry:
    try:
        return ENGINE_CLASSES[(spec.model_type, engine)]
    except KeyError:
        raise LoadError(f"engine {engine!r} cannot serve model_type {spec.model_type!r}") from None


def _class(entry: EngineEntry) -> Callable[[LoadOptions], Engine]:
    """The engine class of ``entry``, its module imported."""
    cls: Callable[[LoadOptions], Engine] = getattr(importlib.import_module(entry.module), entry.cls)
    return cls


def import_engine(spec: LoadOptions) -> None:
    """In a handler process, before anything else: keep out what ``spec``'s
    engine never uses, and import everything it loads with (the slow part of
    a handler's start that needs no model yet)."""
    entry = _entry(spec, resolve_engine(spec))
    for name in entry.unused:
        # None in sys.modules is Python's own switch: `import torch` then fails
        # and importlib.util.find_spec("torch") is None, so transformers skips it.
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    _class(entry)
    for library in entry.libraries:
        importlib.import_module(library)


def open_engine(spec: LoadOptions) -> Engine:
    """Load the model of ``spec`` into the engine it names or implies."""
    engine = resolve_engine(spec)
    cls = _class(_entry(spec, engine))
    if engine == "llamacpp" and not Path(spec.model_path).exists():
        raise LoadError(f"model_path {spec.model_path!r} does not exist")
    return cls(spec)
