"""What a model will take in memory, estimated from its files before it loads.

Weights: the size of its weight files. A GGUF on llama.cpp adds its KV cache,
``context_length x slots x layers x 2 (K and V) x kv heads x head dim x 2
bytes`` (f16), from the file's metadata. Every handler adds its runtime: the
interpreter and the engine's libraries (measured on the embedded models: about
150 MB for llama.cpp, 700 MB for sentence-transformers with torch, 400 MB for
faster-whisper). Loaded models are then measured for real (RSS + accelerator
memory) and both figures are shown, so the estimate can be checked.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from bodega.errors import InsufficientMemory
from bodega.settings import ModelSpec
from catalog.gguf_meta import GGUFError, read_metadata, trained_context_length

if TYPE_CHECKING:
    from .model import Model

log = logging.getLogger(__name__)
MB = 1024 * 1024
# The share of physical memory models may use by default.
DEFAULT_BUDGET_SHARE = 0.8
# The runtime a handler process costs before any weights, per engine.
RUNTIME_MB = {
    "llamacpp": 150,
    "mlx": 300,
    "sentence-transformers": 700,
    "cross-encoder": 700,
    "bi-encoder": 700,
    "faster-whisper": 400,
    "diffusers": 900,
    "mflux": 500,
}
WEIGHT_SUFFIXES = (".gguf", ".safetensors", ".bin", ".npz", ".pt", ".pth", ".onnx")
DEFAULT_CONTEXT = 32768  # llama.cpp engine: the file's own context, at most this


def default_budget_mb() -> int:
    """``server.memory_budget_mb`` when unset: a share of physical memory
    (on Apple Silicon, unified memory is physical memory)."""
    return int(psutil.virtual_memory().total * DEFAULT_BUDGET_SHARE / MB)


def estimate_mb(spec: ModelSpec, path: str, engine: str) -> int:
    """The model's estimated footprint in MB, from its files at ``path``."""
    files = Path(path)
    weights = sum(
        f.stat().st_size
        for f in ([files] if files.is_file() else files.rglob("*"))
        if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES)
    )
    kv = kv_cache_bytes(files, spec) if engine == "llamacpp" and files.is_file() else 0
    return int((weights + kv) / MB) + RUNTIME_MB.get(engine, 300)


def kv_cache_bytes(gguf: Path, spec: ModelSpec) -> int:
    """The f16 KV cache llama.cpp allocates for ``spec``'s context and slots."""
    try:
        meta = read_metadata(gguf)
    except (OSError, GGUFError):
        return 0
    arch = meta.get("general.architecture")
    layers = int(meta.get(f"{arch}.block_count") or 0)
    heads = int(meta.get(f"{arch}.attention.head_count") or 0)
    kv_heads = int(meta.get(f"{arch}.attention.head_count_kv") or heads)
    width = int(meta.get(f"{arch}.embedding_length") or 0)
    head_dim = int(meta.get(f"{arch}.attention.key_length") or (width // heads if heads else 0))
    trained = trained_context_length(meta) or DEFAULT_CONTEXT
    context = spec.context_length or min(trained, DEFAULT_CONTEXT)
    slots = max(1, spec.max_concurrency)
    return context * slots * layers * 2 * kv_heads * head_dim * 2


async def fit_in_budget(
    model: Model,
    models: list[Model],
    budget: int,
    unload: Callable[[str], Awaitable[object]],
) -> None:
    """Unload idle, unpinned models (least recently used first) until
    ``model``'s estimate fits ``budget``; InsufficientMemory (507) naming what
    holds the memory when it cannot."""
    others = [m for m in models if m is not model and m.status not in ("failed", "stopped")]
    used = sum(m.footprint_mb for m in others)
    idle = sorted((m for m in others if m.evictable), key=lambda m: m.last_used)
    while used + model.estimated_mb > budget and idle:
        victim = idle.pop(0)
        log.info("unloading %s (least recently used) to fit %s in memory", victim.id, model.id)
        used -= victim.footprint_mb
        others.remove(victim)
        await unload(victim.id)
    if used + model.estimated_mb <= budget:
        return
    holders = ", ".join(
        f"{m.id} ({m.footprint_mb} MB{', pinned' if m.spec.pinned else ''}"
        f"{', busy' if m.busy else ''})"
        for m in others
    )
    missing = used + model.estimated_mb - budget
    raise InsufficientMemory(
        f"model {model.id!r} needs about {model.estimated_mb} MB but only "
        f"{max(0, budget - used)} MB of the {budget} MB memory budget are free "
        f"({missing} MB missing); held by: {holders or 'nothing'}"
    )
