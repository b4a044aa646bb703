"""``python -m bench.images_worker MODEL_FOLDER``: the diffusers engine in-process.

The baseline of the ``images`` bench group: the handler's own engine class on
the same pipeline folder, in a process started with the handler's
environment. Each line ``SEED`` on stdin makes one image with the group's
steps and size and answers ``{"seconds": ...}``; EOF ends it.
"""

from __future__ import annotations

import json
import sys
import time

from catalog.options import LoadOptions
from handlers.images.diffusers_engine import DiffusersEngine
from ipc.image_messages import GenerateImage

STEPS = 4
SIZE = 256


def main() -> None:
    """Serve timing requests on stdin until EOF."""
    engine = DiffusersEngine(
        LoadOptions(model_path=sys.argv[1], model_type="image-generation", n_threads=1)
    )
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = GenerateImage(
            req_id=1, prompt="a fox", width=SIZE, height=SIZE, steps=STEPS, seed=int(line)
        )
        started = time.perf_counter()
        engine.handle(request, lambda frame: None, lambda: False)
        print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)
    engine.close()


if __name__ == "__main__":
    main()
