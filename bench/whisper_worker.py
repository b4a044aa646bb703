"""``python -m bench.whisper_worker ENGINE MODEL_FOLDER``: a Whisper engine in-process.

The baseline of the ``whisper`` bench group: the engine library's own
``transcribe`` on the same weights, precision and decoding settings as the
server's handler, in a process started with the handler's environment
(OpenBLAS for MLX). Each line ``PATH`` on stdin transcribes that file and
answers one JSON line ``{"seconds": ..., "text": ...}``; EOF ends it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path


def faster_whisper_runner(folder: str) -> Callable[[str], str]:
    """faster-whisper as ``handlers/whisper/ct2_engine.py`` drives it."""
    from faster_whisper import WhisperModel

    from handlers.whisper.common import FALLBACK_TEMPERATURES
    from handlers.whisper.ct2_engine import BEAM_SIZE, _device, cpu_threads

    device, index, compute_type = _device(None)
    model = WhisperModel(
        folder,
        device=device,
        device_index=index,
        compute_type=compute_type,
        cpu_threads=cpu_threads(None),
    )

    def run(path: str) -> str:
        segments, _ = model.transcribe(
            path,
            language="en",
            beam_size=BEAM_SIZE,
            temperature=list(FALLBACK_TEMPERATURES),
            vad_filter=False,
            condition_on_previous_text=True,
        )
        return "".join(s.text for s in segments)

    return run


def mlx_whisper_runner(folder: str) -> Callable[[str], str]:
    """``mlx_whisper.transcribe`` on the converted weights, in the handler's dtype."""
    import mlx.core as mx
    import mlx_whisper
    from mlx.utils import tree_map
    from mlx_whisper.load_models import load_model
    from mlx_whisper.transcribe import ModelHolder

    from handlers.whisper.mlx_engine import resolve_folder

    converted = resolve_folder(folder)
    cuda = getattr(mx, "cuda", None)
    gpu = mx.metal.is_available() or (cuda is not None and cuda.is_available())
    dtype = mx.float16 if gpu else mx.float32
    model = load_model(str(converted), dtype=dtype)
    model.update(tree_map(lambda w: w.astype(dtype), model.parameters()))
    ModelHolder.model, ModelHolder.model_path = model, str(converted)

    def run(path: str) -> str:
        result = mlx_whisper.transcribe(
            path, path_or_hf_repo=str(converted), fp16=dtype == mx.float16, language="en"
        )
        return str(result["text"])

    return run


def main(argv: list[str]) -> int:
    """Serve transcription requests on stdin until EOF."""
    engine, folder = argv
    run = (
        faster_whisper_runner(folder) if engine == "faster-whisper" else mlx_whisper_runner(folder)
    )
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        path = line.strip()
        if not path or not Path(path).is_file():
            print(json.dumps({"error": f"no such file {path!r}"}), flush=True)
            continue
        started = time.perf_counter()
        text = run(path)
        print(json.dumps({"seconds": time.perf_counter() - started, "text": text}), flush=True)
    sys.stdout.flush()
    os._exit(0)  # skip the engines' destructors


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
