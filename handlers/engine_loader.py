"""Pick and open the engine a model's ``LoadOptions`` ask for."""

from __future__ import annotations

from pathlib import Path

from catalog.engines import NoEngine
from catalog.engines import resolve_engine as _resolve_engine
from catalog.options import LoadOptions
from handlers.engine_protocol import Engine, LoadError


def resolve_engine(spec: LoadOptions) -> str:
    """The concrete engine name for ``spec`` (``auto`` decided by the files, as
    the server decides it: catalog.engines)."""
    try:
        return _resolve_engine(spec.model_type, spec.engine, spec.model_path)
    except NoEngine as exc:
        raise LoadError(str(exc)) from None


def open_engine(spec: LoadOptions) -> Engine:
    """Load the model of ``spec`` into the engine it names or implies."""
    engine = resolve_engine(spec)
    if spec.model_type == "lm" and engine == "llamacpp":
        if not Path(spec.model_path).exists():
            raise LoadError(f"model_path {spec.model_path!r} does not exist")
        from handlers.lm.llamacpp_engine import LlamaCppEngine

        return LlamaCppEngine(spec)
    if spec.model_type == "lm" and engine == "mlx":
        from handlers.lm.mlx_engine import MlxEngine

        return MlxEngine(spec)
    if spec.model_type == "embeddings" and engine == "sentence-transformers":
        from handlers.embeddings.st_engine import SentenceTransformerEngine

        return SentenceTransformerEngine(spec)
    if spec.model_type == "rerank" and engine == "cross-encoder":
        from handlers.embeddings.rerank import CrossEncoderEngine

        return CrossEncoderEngine(spec)
    if spec.model_type == "rerank" and engine == "bi-encoder":
        from handlers.embeddings.rerank import BiEncoderRerankEngine

        return BiEncoderRerankEngine(spec)
    if spec.model_type == "whisper" and engine == "faster-whisper":
        from handlers.whisper.ct2_engine import FasterWhisperEngine

        return FasterWhisperEngine(spec)
    if spec.model_type == "whisper" and engine == "mlx":
        from handlers.whisper.mlx_engine import MlxWhisperEngine

        return MlxWhisperEngine(spec)
    raise LoadError(f"engine {engine!r} cannot serve model_type {spec.model_type!r}")
