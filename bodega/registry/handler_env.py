"""The environment a handler (or converter) process runs in."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


def openblas_library() -> str | None:
    """Debian's OpenBLAS, which MLX's CPU backend on Linux runs far faster with.

    The ``mlx-cpu`` wheel bundles the reference BLAS (1.8 GFLOP/s float32 GEMM
    here); preloading OpenBLAS lifts that to about 121 GFLOP/s.
    """
    if not sys.platform.startswith("linux"):
        return None
    for folder in (
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
    ):
        candidate = Path(folder) / "libopenblas.so.0"
        if candidate.is_file():
            return str(candidate)
    return None


def handler_env(engine: str) -> dict[str, str]:
    """The environment of a handler (or converter) process for ``engine``."""
    env = dict(os.environ)
    # The handler logs at the server's level (handlers.logs); its format
    # follows the server's --log-format when set there.
    env.setdefault("BODEGA_LOG_LEVEL", logging.getLevelName(logging.getLogger().level))
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _PROJECT_ROOT + (os.pathsep + path if path else "")
    blas = openblas_library() if engine in ("mlx", "mflux") else None
    if blas and "LD_PRELOAD" not in env:
        env["LD_PRELOAD"] = blas
    if engine in ("sentence-transformers", "cross-encoder", "bi-encoder", "diffusers"):
        env["HF_HUB_OFFLINE"] = "1"  # local files only, never the Hugging Face hub
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        # torch's OpenMP threads otherwise spin between operations, taking the
        # CPU the HTTP process needs: 3x the throughput on a busy 2-core box.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env
