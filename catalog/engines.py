"""Which engine serves which model_type, and which load options each honours."""

from __future__ import annotations

from typing import Literal

from catalog.files import is_diffusers, is_gguf, is_mlx_whisper

ModelType = Literal[
    "lm", "multimodal", "embeddings", "rerank", "whisper", "image-generation", "image-edit"
]
EngineName = Literal[
    "auto",
    "llamacpp",
    "mlx",
    "sentence-transformers",
    "cross-encoder",
    "bi-encoder",
    "faster-whisper",
    "diffusers",
    "mflux",
]

# Load options with an effect only for some engines; one is "set" when it
# differs from its default (catalog.options.LoadOptions).
ENGINE_SPECIFIC: tuple[str, ...] = (
    "quantize",
    "config_name",
    "lora_paths",
    "lora_scales",
    "disable_auto_resize",
    "mmproj_path",
    "max_images",
    "max_image_pixels",
    "enable_auto_tool_choice",
    "tool_call_parser",
    "reasoning_parser",
    "trust_remote_code",
    "draft_model_path",
    "num_draft_tokens",
    "batch_window_ms",
    "max_batch_size",
    "embedding_cache_size",
    "n_batch",
    "n_gpu_layers",
    "use_mmap",
    "use_mlock",
)

_BATCHING = frozenset({"batch_window_ms", "max_batch_size", "embedding_cache_size"})

_CHAT_PARSING = ("enable_auto_tool_choice", "tool_call_parser", "reasoning_parser")
_IMAGES = ("max_images", "max_image_pixels")
_LLAMACPP = ("n_batch", "n_gpu_layers", "use_mmap", "use_mlock")

# model_type -> engine -> the engine-specific options it honours. A model_type
# missing here has no engine yet.
SUPPORTED: dict[str, dict[str, frozenset[str]]] = {
    "lm": {
        "llamacpp": frozenset({*_CHAT_PARSING, *_LLAMACPP}),
        "mlx": frozenset(
            {
                *_CHAT_PARSING,
                "lora_paths",
                "lora_scales",
                "trust_remote_code",
                "draft_model_path",
                "num_draft_tokens",
            }
        ),
    },
    "multimodal": {
        "llamacpp": frozenset({*_CHAT_PARSING, *_IMAGES, *_LLAMACPP, "mmproj_path"}),
        "mlx": frozenset({*_CHAT_PARSING, *_IMAGES, "disable_auto_resize", "trust_remote_code"}),
    },
    # diffusers: quantize 16 only (bfloat16 weights), LoRA through peft; mflux: 4, 8
    # or 16, configs, LoRA.
    "image-generation": {
        "diffusers": frozenset({"quantize", "lora_paths", "lora_scales"}),
        "mflux": frozenset({"quantize", "config_name", "lora_paths", "lora_scales"}),
    },
    "image-edit": {
        "diffusers": frozenset({"quantize", "lora_paths", "lora_scales"}),
        "mflux": frozenset({"quantize", "config_name", "lora_paths", "lora_scales"}),
    },
    "embeddings": {"sentence-transformers": _BATCHING | {"trust_remote_code"}},
    "whisper": {"faster-whisper": frozenset(), "mlx": frozenset()},
    "rerank": {
        "cross-encoder": frozenset({"trust_remote_code"}),
        "bi-encoder": _BATCHING | {"trust_remote_code"},
    },
}

# The engine ``auto`` picks for model types that do not look at the files.
_AUTO = {"embeddings": "sentence-transformers", "rerank": "cross-encoder"}


class NoEngine(ValueError):
    """No engine serves this model_type yet."""


def resolve_engine(model_type: str, engine: str, model_path: str) -> str:
    """The concrete engine for a model; ``auto`` is decided by its files.

    GGUF files run on llama.cpp (the fast path on CPUs; multimodal ones with
    their projector); MLX model folders and Hugging Face repo ids run on
    mlx-lm (multimodal: mlx-vlm). An image model folder with a diffusers
    ``model_index.json`` runs on diffusers, any other on mflux. An mlx-whisper folder runs on
    mlx-whisper, any other Whisper folder on faster-whisper (CTranslate2).
    NoEngine when ``auto`` has nothing to pick for ``model_type``.
    """
    if engine != "auto":
        return engine
    return auto_engine(
        model_type,
        gguf=is_gguf(model_path),
        diffusers=is_diffusers(model_path),
        mlx_whisper=is_mlx_whisper(model_path),
    )


def auto_engine(model_type: str, *, gguf: bool, diffusers: bool, mlx_whisper: bool) -> str:
    """``auto``'s choice from what the model's files are (``resolve_engine``
    looks at them on disk, ``catalog.sniff`` at a repo's file names)."""
    if model_type in _AUTO:
        return _AUTO[model_type]
    if model_type == "whisper":
        return "mlx" if mlx_whisper else "faster-whisper"
    if model_type in ("lm", "multimodal"):
        return "llamacpp" if gguf else "mlx"
    if model_type in ("image-generation", "image-edit"):
        return "diffusers" if diffusers else "mflux"
    raise NoEngine(f"no engine serves model_type {model_type!r} yet")
