"""Tell model files apart by looking at them (cheap: a few bytes or a stat)."""

from __future__ import annotations

import os
from pathlib import Path

GGUF_MAGIC = b"GGUF"

StrPath = str | os.PathLike[str]


def is_gguf(path: StrPath) -> bool:
    """True when ``path`` is a file that starts with the GGUF magic."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def is_ct2_whisper(folder: StrPath) -> bool:
    """True for a faster-whisper (CTranslate2) folder: ``model.bin`` + ``config.json``."""
    folder = Path(folder)
    return (folder / "model.bin").is_file() and (folder / "config.json").is_file()


def is_mlx_whisper(folder: StrPath) -> bool:
    """True for an mlx-whisper folder: ``config.json`` + ``weights.safetensors``/``.npz``."""
    folder = Path(folder)
    return (folder / "config.json").is_file() and any(
        (folder / name).is_file() for name in ("weights.safetensors", "weights.npz")
    )


def is_diffusers(folder: StrPath) -> bool:
    """True for a diffusers pipeline folder (``model_index.json``)."""
    return (Path(folder) / "model_index.json").is_file()


def looks_like_repo_id(path: str) -> bool:
    """``owner/name``: resolved from the local Hugging Face cache by MLX engines."""
    return path.count("/") == 1 and not path.startswith((".", "/", "~")) and not Path(path).exists()


def find_mmproj(model_path: StrPath) -> Path | None:
    """The multimodal projector beside a GGUF model: the one ``mmproj*.gguf``
    file in its folder (the name llama.cpp's converters give it), or None."""
    model = Path(model_path)
    found = sorted(p for p in model.parent.glob("mmproj*.gguf") if p != model and is_gguf(p))
    return found[0] if found else None
