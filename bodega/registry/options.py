"""Which engine serves a model, and which load-model options it honours.

Anything a model sets that its engine cannot honour is refused with a 400
naming the options: never silently ignored.
"""

from __future__ import annotations

from pathlib import Path

from bodega.errors import InvalidRequest
from bodega.settings import ModelSpec

GGUF_MAGIC = b"GGUF"

# Options with an effect only for some engines; each is "set" when it differs
# from its default.
_ENGINE_SPECIFIC = (
    "quantize",
    "config_name",
    "lora_paths",
    "lora_scales",
    "disable_auto_resize",
    "enable_auto_tool_choice",
    "tool_call_parser",
    "reasoning_parser",
    "trust_remote_code",
    "draft_model_path",
    "num_draft_tokens",
    "batch_window_ms",
    "max_batch_size",
    "embedding_cache_size",
)

_BATCHING = frozenset({"batch_window_ms", "max_batch_size", "embedding_cache_size"})

_CHAT_PARSING = ("enable_auto_tool_choice", "tool_call_parser", "reasoning_parser")

# model_type -> engine -> the engine-specific options it honours.
SUPPORTED: dict[str, dict[str, frozenset[str]]] = {
    "lm": {
        "llamacpp": frozenset(_CHAT_PARSING),
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
    "embeddings": {"sentence-transformers": _BATCHING | {"trust_remote_code"}},
    "whisper": {"faster-whisper": frozenset(), "mlx": frozenset()},
    "rerank": {
        "cross-encoder": frozenset({"trust_remote_code"}),
        "bi-encoder": _BATCHING | {"trust_remote_code"},
    },
}

# The engine ``auto`` picks for model types that do not look at the files.
_AUTO = {"embeddings": "sentence-transformers", "rerank": "cross-encoder"}


def is_gguf(path: str) -> bool:
    """True when ``path`` is a file starting with the GGUF magic."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def looks_like_repo_id(path: str) -> bool:
    """``owner/name``: resolved from the local Hugging Face cache by MLX engines."""
    return path.count("/") == 1 and not path.startswith((".", "/", "~")) and not Path(path).exists()


def is_mlx_whisper(path: str) -> bool:
    """An mlx-whisper folder (``config.json`` + ``weights.safetensors``/``.npz``)."""
    folder = Path(path)
    return (folder / "config.json").is_file() and any(
        (folder / name).is_file() for name in ("weights.safetensors", "weights.npz")
    )


def resolve_engine(spec: ModelSpec) -> str:
    """The engine that will serve ``spec``; mirrors handlers.engine_loader for ``auto``."""
    if spec.engine != "auto":
        return spec.engine
    if spec.model_type in _AUTO:
        return _AUTO[spec.model_type]
    if spec.model_type == "whisper":
        return "mlx" if is_mlx_whisper(spec.model_path) else "faster-whisper"
    return "llamacpp" if is_gguf(spec.model_path) else "mlx"


def check_supported(spec: ModelSpec) -> str:
    """The engine for ``spec``; InvalidRequest when it asks for what cannot be served."""
    engines = SUPPORTED.get(spec.model_type)
    if engines is None:
        raise InvalidRequest(
            f"model_type {spec.model_type!r} is not supported yet; supported: "
            + ", ".join(sorted(SUPPORTED)),
            param="model_type",
        )
    engine = resolve_engine(spec)
    honoured = engines.get(engine)
    if honoured is None:
        raise InvalidRequest(
            f"engine {engine!r} is not available for model_type {spec.model_type!r}; "
            "available: auto, " + ", ".join(sorted(engines)),
            param="engine",
        )
    defaults = ModelSpec(model_path="-")
    refused = [
        name
        for name in _ENGINE_SPECIFIC
        if getattr(spec, name) != getattr(defaults, name) and name not in honoured
    ]
    if refused:
        raise InvalidRequest(
            f"engine {engine!r} cannot honour {', '.join(refused)} for "
            f"model_type {spec.model_type!r} yet",
            param=refused[0],
        )
    if spec.lora_scales and len(spec.lora_scales) != len(spec.lora_paths or []):
        raise InvalidRequest(
            "lora_scales needs one scale per lora_paths entry", param="lora_scales"
        )
    _check_parsers(spec)
    if spec.num_draft_tokens is not None and not spec.draft_model_path:
        raise InvalidRequest("num_draft_tokens needs draft_model_path", param="num_draft_tokens")
    return engine


def _check_parsers(spec: ModelSpec) -> None:
    """Unknown parser names are a 400 at load, not a failure at the first request."""
    from handlers.parsing import REASONING_PARSERS, TOOL_PARSERS  # pure Python, no engines

    for param, value, known in (
        ("tool_call_parser", spec.tool_call_parser, TOOL_PARSERS),
        ("reasoning_parser", spec.reasoning_parser, REASONING_PARSERS),
    ):
        if value is not None and value not in known:
            raise InvalidRequest(
                f"unknown {param} {value!r}; known: {', '.join(sorted(known))}", param=param
            )
