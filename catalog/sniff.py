"""What a model repository holds, told from its file names and config.json.

The model list shows, for every repo in the Hugging Face cache, the
model_type it most likely is and the engines that can serve it; loading a
repo id picks its engine the same way before its files are on disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Any

import msgspec


class Sniffed(msgspec.Struct):
    """The model_type a repo most likely holds and the engines that serve it."""

    model_type: str | None
    engines: list[str]


def gguf_models(files: Iterable[str]) -> list[str]:
    """The model GGUFs among ``files`` (projectors, ``mmproj*``, left out)."""
    return sorted(
        f for f in files if f.endswith(".gguf") and not PurePosixPath(f).name.startswith("mmproj")
    )


def projectors(files: Iterable[str]) -> list[str]:
    """The multimodal projector GGUFs among ``files``."""
    return sorted(
        f for f in files if f.endswith(".gguf") and PurePosixPath(f).name.startswith("mmproj")
    )


def sniff(files: Iterable[str], config: Mapping[str, Any] | None = None) -> Sniffed:
    """Guess the model_type and engines of a repo from its file list and its
    ``config.json`` (when read); ``model_type`` None when nothing matches."""
    names = set(files)
    config = config or {}
    if gguf_models(names):
        kind = "multimodal" if projectors(names) else "lm"
        return Sniffed(kind, ["llamacpp"])
    if "model_index.json" in names:
        flux = any(n.startswith("transformer/") for n in names)
        return Sniffed("image-generation", ["diffusers", "mflux"] if flux else ["diffusers"])
    if config.get("model_type") == "whisper" or _is_whisper(names, config):
        engines = ["faster-whisper"] if "model.bin" in names else ["mlx"]
        return Sniffed("whisper", engines)
    if "modules.json" in names or "sentence_bert_config.json" in names:
        return Sniffed("embeddings", ["sentence-transformers"])
    architectures = [str(a) for a in config.get("architectures") or []]
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return Sniffed("rerank", ["cross-encoder"])
    if "vision_config" in config:
        return Sniffed("multimodal", ["mlx"])
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return Sniffed("lm", ["mlx"])
    return Sniffed(None, [])


def _is_whisper(names: set[str], config: Mapping[str, Any]) -> bool:
    """CTranslate2 exports keep Whisper's decoding tables in config.json
    (``alignment_heads``, ``suppress_ids``); mlx-whisper ones its ``n_mels``."""
    if "model.bin" in names:
        return "alignment_heads" in config or "suppress_ids" in config
    return "n_mels" in config and "n_audio_ctx" in config
