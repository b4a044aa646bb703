"""``python -m bench.vision_worker ENGINE MODEL_PATH``: a multimodal engine in-process.

The baseline of the ``vision`` bench group: the handler's own engine class on
the same model, in a process started with the handler's environment. Each
line ``NONCE IMAGE_PATH`` on stdin runs one greedy one-token chat request with
that image (its bytes put in shared memory, as the server does) and answers
``{"ttft": seconds}``; EOF ends it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from catalog.options import LoadOptions
from ipc import shm
from ipc.messages import ChatMessage, Generate, ImagePart, Sampling, TextPart


def open_engine(engine: str, model_path: str) -> Any:
    """The handler's engine for a multimodal model."""
    spec = LoadOptions(
        model_path=model_path,
        model_type="multimodal",
        engine=engine,  # type: ignore[arg-type]
        n_threads=1,
    )
    if engine == "llamacpp":
        from handlers.lm.llamacpp_engine import LlamaCppEngine

        return LlamaCppEngine(spec)
    from handlers.vision.mlx_vlm_engine import MlxVlmEngine

    return MlxVlmEngine(spec)


def main() -> None:
    """Serve timing requests on stdin until EOF."""
    engine = open_engine(sys.argv[1], sys.argv[2])
    owner = shm.ShmOwner()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        nonce, path = line.split()
        started = time.perf_counter()
        first: list[float] = []
        part = ImagePart(image=owner.create(Path(path).read_bytes()))
        message = ChatMessage(
            role="user", content="", parts=[TextPart(f"{nonce} What is this?"), part]
        )
        request = Generate(
            req_id=1, messages=[message], max_tokens=1, sampling=Sampling(temperature=0.0)
        )

        def emit(text: str, n_tokens: int, first: list[float] = first, **_: Any) -> None:
            if n_tokens and not first:
                first.append(time.perf_counter())

        engine.generate(request, emit, lambda: False)
        owner.release_all()
        print(json.dumps({"ttft": (first or [time.perf_counter()])[0] - started}), flush=True)
    engine.close()


if __name__ == "__main__":
    main()
