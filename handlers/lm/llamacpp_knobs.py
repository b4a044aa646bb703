"""The LLM Service docs' llama.cpp load options, set on xllamacpp's params."""

from __future__ import annotations

from typing import Any

from catalog.options import LoadOptions
from handlers.device import llamacpp_gpu_layers


def load_mode_name(use_mmap: bool | None, use_mlock: bool | None) -> str:
    """The ``llama_load_mode`` member for the two switches; AUTO when neither
    is set (llama.cpp's own choice)."""
    if use_mmap is None and use_mlock is None:
        return "LLAMA_LOAD_MODE_AUTO"
    mmap = use_mmap is not False
    mlock = bool(use_mlock)
    if mmap and mlock:
        return "LLAMA_LOAD_MODE_MMAP_MLOCK"
    if mmap:
        return "LLAMA_LOAD_MODE_MMAP"
    return "LLAMA_LOAD_MODE_MLOCK" if mlock else "LLAMA_LOAD_MODE_NONE"


def set_knobs(params: Any, spec: LoadOptions) -> None:
    """``n_batch``, ``n_gpu_layers``, ``use_mmap`` and ``use_mlock`` on
    ``params`` (an ``xllamacpp.CommonParams``); unset ones keep llama.cpp's."""
    import xllamacpp

    if spec.n_batch is not None:
        params.n_batch = spec.n_batch
        # The physical batch may not exceed the logical one.
        params.n_ubatch = min(params.n_ubatch, spec.n_batch)
    if spec.n_gpu_layers is not None:
        params.n_gpu_layers = spec.n_gpu_layers
    if spec.device is not None:
        kinds = [getattr(d.get("type"), "name", "") for d in xllamacpp.get_device_info()]
        gpus = [k for k in kinds if k.endswith(("_GPU", "_IGPU"))]
        layers = llamacpp_gpu_layers(spec.device, bool(gpus))
        if layers is not None:  # device cpu: no layer leaves the CPU
            params.n_gpu_layers = layers
    mode = load_mode_name(spec.use_mmap, spec.use_mlock)
    params.load_mode = getattr(xllamacpp.llama_load_mode, mode)
