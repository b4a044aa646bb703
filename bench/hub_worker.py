"""``python -m bench.hub_worker ENDPOINT CACHE_DIR REPO``: snapshot_download in-process.

The baseline of the ``hub`` bench group, in its own process as the server's
download is in its own: each line on stdin empties ``CACHE_DIR``, downloads
``REPO`` from ``ENDPOINT`` and answers ``{"seconds": ...}``; EOF ends it.
"""

from __future__ import annotations

import json
import shutil
import sys
import time

from huggingface_hub import snapshot_download
from huggingface_hub.utils import disable_progress_bars


def main() -> None:
    """Serve timing requests on stdin until EOF."""
    endpoint, cache, repo = sys.argv[1:4]
    disable_progress_bars()
    print(json.dumps({"ready": True}), flush=True)
    for _ in sys.stdin:
        shutil.rmtree(cache, ignore_errors=True)
        started = time.perf_counter()
        snapshot_download(repo, cache_dir=cache, endpoint=endpoint)
        print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)


if __name__ == "__main__":
    main()
