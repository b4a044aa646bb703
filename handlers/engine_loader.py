"""Pick and open the engine a ``LoadSpec`` asks for."""

from __future__ import annotations

from pathlib import Path

from handlers.convert.gguf import is_gguf
from handlers.engine_protocol import Engine, LoadError
from ipc.messages import LoadSpec


def resolve_engine(spec: LoadSpec) -> str:
    """The concrete engine name for ``spec`` (``auto`` decided by the files).

    GGUF files run on llama.cpp (the fast path on CPUs); MLX model folders and
    Hugging Face repo ids run on mlx-lm.
    """
    if spec.engine != "auto":
        return spec.engine
    if spec.model_type == "lm":
        return "llamacpp" if is_gguf(spec.model_path) else "mlx"
    if spec.model_type == "embeddings":
        return "sentence-transformers"
    if spec.model_type == "rerank":
        return "cross-encoder"
    if spec.model_type == "whisper":
        return whisper_engine(spec.model_path)
    raise LoadError(f"no engine serves model_type {spec.model_type!r} yet")


def whisper_engine(model_path: str) -> str:
    """``mlx`` for an mlx-whisper folder, else faster-whisper (CTranslate2)."""
    from handlers.convert.whisper_to_mlx import is_mlx_whisper

    return "mlx" if is_mlx_whisper(model_path) else "faster-whisper"


def open_engine(spec: LoadSpec) -> Engine:
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
