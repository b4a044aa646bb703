"""Which device an engine runs on (``LoadOptions.device``), checked at load.

A device that is not there is a LoadError naming it, so the load fails with
a message rather than an engine falling back silently to the CPU.
"""

from __future__ import annotations

import sys

from catalog.devices import parse_device
from handlers.engine_protocol import LoadError


def _missing(device: str, why: str) -> LoadError:
    return LoadError(f"device {device!r} is not available on this machine: {why}")


def torch_device(requested: str | None) -> str:
    """The torch device for ``requested`` (None or ``auto``: CUDA, then MPS,
    then CPU); LoadError when it names a device torch cannot see."""
    import torch

    device = (requested or "auto").strip().lower()
    kind, index = parse_device(device)
    if kind == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise _missing(device, "torch sees no CUDA GPU")
        if index is not None and index >= count:
            raise _missing(device, f"torch sees {count} CUDA GPU(s)")
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise _missing(device, "torch has no Metal (MPS) backend here")
    return device


def ct2_device(requested: str | None) -> tuple[str, int]:
    """(device, index) for CTranslate2 (faster-whisper): ``auto`` picks CUDA
    when present; ``mps`` does not exist for CTranslate2."""
    import ctranslate2

    device = (requested or "auto").strip().lower()
    kind, index = parse_device(device)
    count = ctranslate2.get_cuda_device_count()
    if kind == "auto":
        return ("cuda" if count > 0 else "cpu"), 0
    if kind == "mps":
        raise _missing(device, "CTranslate2 runs on CPUs and CUDA GPUs only")
    if kind == "cuda":
        if count == 0:
            raise _missing(device, "CTranslate2 sees no CUDA GPU")
        if index is not None and index >= count:
            raise _missing(device, f"CTranslate2 sees {count} CUDA GPU(s)")
        return "cuda", index or 0
    return "cpu", 0


def llamacpp_gpu_layers(requested: str | None, gpu_offload: bool) -> int | None:
    """The ``n_gpu_layers`` a device implies on llama.cpp: ``cpu`` keeps every
    layer on the CPU (0); ``cuda``/``mps`` need a build with GPU offload (of
    that kind); None: llama.cpp's own choice."""
    device = (requested or "auto").strip().lower()
    kind, _ = parse_device(device)
    if kind == "cpu":
        return 0
    if kind == "auto":
        return None
    if not gpu_offload:
        raise _missing(device, "this llama.cpp build has no GPU offload")
    if kind == "mps" and sys.platform != "darwin":
        raise _missing(device, "Metal exists on macOS only")
    return None
