"""Download throughput: ``POST /v1/admin/download-model`` versus
``huggingface_hub.snapshot_download`` in-process, from the same local hub
stand-in (the tests' ``HubStandIn``), into empty caches, alternating."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx

from .line_worker import LineWorker, side_by_side
from .registry import Options, register
from .report import Table, fmt, median, spread, verdict
from .server import PROJECT_ROOT, BodegaServer

TARGET = 0.95  # server MB/s / in-process MB/s
REPO = "bench/weights"
FILES = {"model.safetensors": 256 * 2**20, "config.json": 2_000, "tokenizer.json": 2 * 2**20}


def _repo_files(folder: Path) -> dict[str, Path]:
    """Incompressible files of the sizes in FILES, written once."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, size in FILES.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != size:
            path.write_bytes(os.urandom(size))
        paths[name] = path
    return paths


def _through_server(client: httpx.Client) -> float:
    """Seconds of one download-model into the server's (emptied) cache."""
    client.delete(f"/v1/models/{REPO}")
    started = time.perf_counter()
    reply = client.post("/v1/admin/download-model", json={"model_path": REPO}, timeout=600)
    elapsed = time.perf_counter() - started
    if reply.status_code != 200:
        raise RuntimeError(f"download-model answered {reply.status_code}: {reply.text[:300]}")
    return elapsed


@register("hub", "model downloads: through the server vs snapshot_download directly")
def run(options: Options) -> list[Table]:
    """One table: MB/s each way and their ratio."""
    sys.path.insert(0, str(PROJECT_ROOT / "tests"))
    from hub_standin import HubStandIn

    log_dir = Path(options.log_dir)
    total_mb = sum(FILES.values()) / 2**20
    reps = options.reps(7, 3)
    with HubStandIn() as hub:
        hub.add_repo(REPO, _repo_files(log_dir / "hub-repo"))
        env = {**os.environ, "HF_HOME": str(log_dir / "hub-server-hf"), "HF_ENDPOINT": hub.url}
        with (
            BodegaServer(
                log_dir / "hub-server.log",
                ["--config", str(_empty_config(log_dir))],
                env=env,
                ready_path="/v1/models",
            ) as server,
            httpx.Client(base_url=server.base_url) as client,
        ):
            worker_args = [hub.url, str(log_dir / "hub-local-cache"), REPO]
            with open(log_dir / "hub-inprocess.log", "ab") as worker_log:
                worker = LineWorker("bench.hub_worker", worker_args, "hub", worker_log)
                try:
                    pairs = side_by_side(
                        reps,
                        lambda i: _through_server(client),
                        lambda i: float(worker.ask("go")["seconds"]),
                    )
                finally:
                    worker.close()
    ratios = [s_local / s_server for s_server, s_local in pairs]
    table = Table(
        title=f"Downloading a {total_mb:.0f} MB repo ({len(FILES)} files) from a local hub "
        f"stand-in: MB/s, medians of {reps}",
        columns=["server MB/s", "snapshot_download MB/s", "ratio", "target", "", "ratio min-max"],
    )
    ratio = median(ratios)
    table.add(
        fmt(total_mb / median([s for s, _ in pairs]), ".0f"),
        fmt(total_mb / median([w for _, w in pairs]), ".0f"),
        fmt(ratio, ".3f"),
        f">= {TARGET:g}",
        verdict(ratio >= TARGET, ratio),
        spread(ratios, "{:.3f}"),
    )
    table.notes.append(
        "ratio = server MB/s / in-process MB/s. Server: POST /v1/admin/download-model "
        "(plans with model_info, checks the disk, then snapshot_download) after DELETE "
        "/v1/models/{id}; in-process: snapshot_download into an emptied cache_dir, in a "
        "worker process (bench/hub_worker.py). The stand-in serves both from the bench process."
    )
    return [table]


def _empty_config(log_dir: Path) -> Path:
    """A config with no models: the server only downloads."""
    path = log_dir / "hub-config.yaml"
    path.write_text("models: []\n")
    return path
