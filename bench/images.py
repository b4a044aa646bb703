"""Image generation: one image through the server versus the same diffusers
engine in-process (the tests' tiny Stable Diffusion, random weights: only the
timings mean anything), and what returning a 1024x1024 PNG costs."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import httpx
import msgspec
import pybase64

from ipc import shm

from .images_worker import SIZE, STEPS
from .line_worker import LineWorker, side_by_side
from .registry import Options, register
from .report import Table, fmt, median, spread, verdict
from .server import PROJECT_ROOT, BodegaServer

TARGET = 0.95  # in-process seconds / server seconds


def seconds(worker: LineWorker, seed: int) -> float:
    """Wall seconds of one image in-process."""
    return float(worker.ask(str(seed))["seconds"])


def server_seconds(client: httpx.Client, seed: int) -> float:
    """Wall seconds of one image through ``/v1/images/generations``."""
    body = {
        "model": "tiny-sd",
        "prompt": "a fox",
        "size": f"{SIZE}x{SIZE}",
        "steps": STEPS,
        "seed": seed,
    }
    started = time.perf_counter()
    reply = client.post("/v1/images/generations", json=body, timeout=300)
    elapsed = time.perf_counter() - started
    if reply.status_code != 200:
        raise RuntimeError(f"generation answered {reply.status_code}: {reply.text[:300]}")
    return elapsed


def wall_table(options: Options, log_dir: Path) -> Table:
    """Server vs in-process wall time of one image."""
    sys.path.insert(0, str(PROJECT_ROOT / "tests" / "handlers" / "images"))
    from tiny_diffusers import build_tiny_diffusers

    folder = build_tiny_diffusers(log_dir / "tiny-sd")
    config = log_dir / "images-config.yaml"
    config.write_text(
        f"models:\n  - model_path: {folder}\n    model_id: tiny-sd\n"
        "    model_type: image-generation\n    n_threads: 1\n"
    )
    reps = options.reps(9, 3)
    table = Table(
        title=f"One {SIZE}x{SIZE} image, {STEPS} steps (tiny SD, diffusers): wall time, "
        f"medians of {reps}",
        columns=["server ms", "in-process ms", "ratio", "target", "", "ratio min-max"],
    )
    with (
        open(log_dir / "images-inprocess.log", "ab") as worker_log,
        BodegaServer(log_dir / "images-server.log", ["--config", str(config)]) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        worker = LineWorker("bench.images_worker", [str(folder)], "diffusers", worker_log)
        try:
            pairs = side_by_side(
                reps, lambda i: server_seconds(client, i), lambda i: seconds(worker, i)
            )
        finally:
            worker.close()
    ratios = [w / s for s, w in pairs]
    ratio = median(ratios)
    table.add(
        fmt(median([s for s, _ in pairs]) * 1000, ".1f"),
        fmt(median([w for _, w in pairs]) * 1000, ".1f"),
        fmt(ratio, ".3f"),
        f">= {TARGET:g}",
        verdict(ratio >= TARGET, ratio),
        spread(ratios, "{:.3f}"),
    )
    table.notes.append(
        "ratio = in-process / server. Server: POST /v1/images/generations (b64_json); "
        "in-process: the handler's DiffusersEngine.handle, PNG encoding included."
    )
    return table


def return_table(options: Options) -> Table:
    """What a finished 1024x1024 PNG costs on its way back to the client."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 255, (1024, 1024, 3), dtype=np.uint8))
    out = io.BytesIO()
    picture.save(out, "PNG", compress_level=6)
    data = out.getvalue()
    owner = shm.ShmOwner()
    steps: dict[str, list[float]] = {k: [] for k in ("write", "read", "b64", "json")}
    for _ in range(options.reps(15, 5)):
        t0 = time.perf_counter()
        ref = owner.create(data)
        t1 = time.perf_counter()
        got = shm.read(ref)
        t2 = time.perf_counter()
        text = pybase64.b64encode(got).decode()
        t3 = time.perf_counter()
        msgspec.json.encode({"data": [{"b64_json": text}]})
        t4 = time.perf_counter()
        owner.release(ref)
        for key, value in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            steps[key].append(value * 1000)
    total = sum(median(v) for v in steps.values())
    table = Table(
        title=f"Returning a 1024x1024 PNG ({len(data) / 1e6:.1f} MB, noise: incompressible): ms",
        columns=["to shm", "from shm", "base64", "JSON", "overhead"],
    )
    table.add(*(fmt(median(v), ".2f") for v in steps.values()), fmt(total, ".2f"))
    table.notes.append("PNG encoding is not counted: in-process it is paid alike.")
    return table


@register(
    "images",
    "image generation: server vs in-process wall time; returning a 1024x1024 PNG",
    needs=("diffusers",),
)
def run(options: Options) -> list[Table]:
    """The two image tables."""
    log_dir = Path(options.log_dir)
    return [wall_table(options, log_dir), return_table(options)]
