"""Finding and loading an MLX language model for the mlx-lm engine.

``model_path`` may be an MLX model folder, a GGUF file (converted once and
cached), or a Hugging Face repo id resolved from the local HF cache only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from catalog.files import is_gguf
from catalog.options import LoadOptions
from handlers.engine_protocol import LoadError, ModelFilesMissing
from ipc.messages import EngineMemory


def conversion_cache_root() -> Path:
    """Where converted GGUF models are kept between runs."""
    root = os.environ.get("BODEGA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "bodega"
    )
    return Path(root) / "converted"


def gguf_dtype(path: Path) -> str | None:
    """The dtype a GGUF is converted to: ``None`` keeps its quantization.

    MLX's CPU backend runs quantized matmuls as scalar loops: on a 2-core x86
    host the 4-bit SmolLM2 prefills at ~10 tok/s and decodes at ~7, the same
    model in float32 (with OpenBLAS) at ~250 and ~18. So with no GPU the
    weights are dequantized to float32 when that fits in a quarter of the
    RAM (about 8x the GGUF's size). ``BODEGA_MLX_GGUF_DTYPE`` overrides:
    ``keep``, ``float32``, ``float16`` or ``bfloat16``.
    """
    choice = os.environ.get("BODEGA_MLX_GGUF_DTYPE", "auto")
    if choice != "auto":
        return None if choice == "keep" else choice
    import mlx.core as mx

    cuda = getattr(mx, "cuda", None)
    if mx.metal.is_available() or (cuda is not None and cuda.is_available()):
        return None
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return "float32" if path.stat().st_size * 8 < ram / 4 else None


def resolve_model_dir(model_path: str) -> Path:
    """An MLX model folder for ``model_path`` (converting a GGUF if needed)."""
    path = Path(model_path)
    if path.is_dir():
        return path
    if path.is_file() and is_gguf(path):
        from handlers.convert.gguf_to_mlx import ConversionError, cached_conversion

        try:
            return cached_conversion(path, conversion_cache_root(), dtype=gguf_dtype(path))
        except (ConversionError, OSError) as exc:
            raise LoadError(f"cannot convert {path} to MLX: {exc}") from exc
    if path.exists():
        raise LoadError(f"{model_path!r} is neither an MLX model folder nor a GGUF file")
    if model_path.count("/") == 1 and not model_path.startswith(("/", ".")):
        return _from_hf_cache(model_path)
    raise LoadError(f"model_path {model_path!r} does not exist")


def _from_hf_cache(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:  # pragma: no cover - mlx-lm depends on it
        raise LoadError("huggingface_hub is needed to resolve repo ids") from exc
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError) as exc:
        raise ModelFilesMissing(
            f"model {repo_id!r} is not in the local Hugging Face cache; download it first "
            f"(POST /v1/admin/download-model or `huggingface-cli download {repo_id}`)"
        ) from exc


def read_template(path: str) -> str:
    """A chat template file's text, checked to be valid Jinja."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise LoadError(f"cannot read chat_template_file {path!r}: {exc.strerror}") from exc
    import jinja2

    try:
        jinja2.Environment().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise LoadError(
            f"chat_template_file {path!r} is not a valid Jinja template: {exc}"
        ) from exc
    return text


def load_model(spec: LoadOptions) -> tuple[Any, Any, Path]:
    """(model, tokenizer, folder) for ``spec``, with LoRA and template applied."""
    from mlx_lm import load

    folder = resolve_model_dir(spec.model_path)
    adapter = None
    if spec.lora_paths:
        if len(spec.lora_paths) > 1:
            raise LoadError("one LoRA adapter at a time is supported (lora_paths has several)")
        adapter = spec.lora_paths[0]
        if not (Path(adapter) / "adapter_config.json").is_file():
            raise LoadError(f"lora_paths[0] {adapter!r} is not an mlx-lm adapter folder")
    try:
        model, tokenizer = load(  # type: ignore[misc]
            str(folder),
            adapter_path=adapter,
            tokenizer_config={"trust_remote_code": spec.trust_remote_code},
            trust_remote_code=spec.trust_remote_code,
        )
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise LoadError(f"mlx-lm could not load {folder}: {exc}") from exc
    if adapter and spec.lora_scales:
        _scale_lora(model, spec.lora_scales[0])
    if spec.chat_template_file:
        tokenizer._tokenizer.chat_template = read_template(spec.chat_template_file)
    if getattr(tokenizer, "chat_template", None) is None and not getattr(
        tokenizer._tokenizer, "chat_template", None
    ):
        raise LoadError(f"{folder} has no chat template; pass chat_template_file")
    return model, tokenizer, folder


def _scale_lora(model: Any, scale: float) -> None:
    for _, module in model.named_modules():
        if hasattr(module, "lora_a") and hasattr(module, "scale"):
            module.scale = scale


def check_same_tokenizer(target: Any, draft: Any) -> None:
    """Speculative decoding needs one vocabulary for target and draft."""
    if target.vocab_size != draft.vocab_size or target.get_vocab() != draft.get_vocab():
        raise LoadError(
            "draft_model_path must share the target model's tokenizer "
            f"(vocabularies differ: {target.vocab_size} vs {draft.vocab_size} tokens)"
        )


def mlx_memory() -> EngineMemory:
    """MLX's active, cache and peak memory (every MLX engine's ``memory``)."""
    import mlx.core as mx

    return EngineMemory(
        active_bytes=int(mx.get_active_memory()),
        cache_bytes=int(mx.get_cache_memory()),
        peak_bytes=int(mx.get_peak_memory()),
    )
