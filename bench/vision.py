"""Vision: one image request through the server versus the same engine
in-process, and the cost of moving a 4-megapixel PNG to the handler.

The models are the tests' tiny ones, built on the fly (random weights: only
the timings mean anything): a llama text GGUF with a gemma3 projector on
llama.cpp, and a Qwen2-VL on mlx-vlm. Each request starts with a fresh nonce,
so neither side reuses a cached prefix.
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import sys
import time
from pathlib import Path

import pybase64

from bodega.services.vision.image_bytes import checked_image
from ipc import shm

from .line_worker import LineWorker, side_by_side
from .rawhttp import SseConnection
from .registry import Options, register
from .report import Table, fmt, median, spread, verdict
from .server import PROJECT_ROOT, BodegaServer

TTFT_TARGET = 0.95  # in-process TTFT / server TTFT
MOVE_TARGET_MS = 5.0
TINY_MODELS = PROJECT_ROOT / "tests" / "handlers" / "vision"


def photo(width: int, height: int, seed: int = 0) -> bytes:
    """A PNG that compresses like a photograph: smooth shading plus noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
    pixels = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def tiny_models(folder: Path) -> dict[str, str]:
    """engine -> model path of the tests' tiny multimodal models."""
    sys.path.insert(0, str(TINY_MODELS))
    from tiny_mmproj import TEXT_HIDDEN, build_tiny_mmproj, build_tiny_text_gguf

    gguf = build_tiny_text_gguf(folder / "tiny-llama.gguf")
    build_tiny_mmproj(folder / "mmproj-tiny-llama.gguf", TEXT_HIDDEN)
    models = {"llamacpp": str(gguf)}
    try:
        from tiny_vlm import build_tiny_vlm

        models["mlx"] = str(build_tiny_vlm(folder / "tiny-qwen2-vl"))
    except ImportError:  # mlx-vlm not installed: llama.cpp only
        pass
    return models


def worker_ttft(worker: LineWorker, image: Path) -> float:
    """Seconds to the first token of one in-process request with ``image``."""
    return float(worker.ask(f"{secrets.token_hex(4)} {image}")["ttft"])


def server_ttft(conn: SseConnection, model: str, image_url: str) -> float:
    """Seconds from sending a streamed one-token image request (its JSON
    built beforehand) to its first token."""
    body = {
        "model": model,
        "stream": True,
        "max_tokens": 1,
        "temperature": 0,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"{secrets.token_hex(4)} What is this?"},
                    {"type": "image_url", "image_url": {"url": image_url}},
                ],
            }
        ],
    }
    payload = json.dumps(body).encode()
    started = time.perf_counter()
    first = None
    for _ in conn.stream("/v1/chat/completions", payload):
        first = first or time.perf_counter()
    if first is None:
        raise RuntimeError("the stream ended without a token")
    return first - started


def ttft_table(options: Options, log_dir: Path) -> Table:
    """TTFT of one image request, server vs in-process, per engine."""
    models = tiny_models(log_dir)
    image = log_dir / "photo-640x480.png"
    image.write_bytes(photo(640, 480))
    url = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    reps = options.reps(15, 5)
    table = Table(
        title=f"One image chat request (640x480 PNG, data URL): TTFT, medians of {reps}",
        columns=["engine", "server ms", "in-process ms", "ratio", "target", "", "ratio min-max"],
    )
    with (
        open(log_dir / "vision-inprocess.log", "ab") as worker_log,
        BodegaServer(log_dir / "vision-server.log", _config(log_dir, models)) as server,
    ):
        conn = SseConnection("127.0.0.1", server.port, timeout=120)
        for engine, path in models.items():
            model = f"tiny-{engine}"
            worker = LineWorker("bench.vision_worker", [engine, path], engine, worker_log)
            try:
                pairs = side_by_side(
                    reps,
                    lambda _: server_ttft(conn, model, url),  # noqa: B023 (used in this iteration)
                    lambda _: worker_ttft(worker, image),  # noqa: B023
                )
            finally:
                worker.close()
            ratios = [w / s for s, w in pairs]
            ratio = median(ratios)
            table.add(
                engine,
                fmt(median([s for s, _ in pairs]) * 1000, ".1f"),
                fmt(median([w for _, w in pairs]) * 1000, ".1f"),
                fmt(ratio, ".3f"),
                f">= {TTFT_TARGET:g}",
                verdict(ratio >= TTFT_TARGET, ratio),
                spread(ratios, "{:.3f}"),
            )
    table.notes += [
        "ratio = in-process TTFT / server TTFT. Server: streamed HTTP request (a raw-socket "
        "client, the JSON built before the clock starts) with the image "
        "as a base64 data URL (decoded, checked, put in shared memory, sent to the handler).",
        "In-process: the handler's engine class in a process with the handler's environment, "
        "the image bytes put in shared memory by the caller.",
    ]
    return table


def _config(log_dir: Path, models: dict[str, str]) -> list[str]:
    config = log_dir / "vision-config.yaml"
    config.write_text(
        "models:\n"
        + "".join(
            f"  - model_id: tiny-{engine}\n    model_type: multimodal\n"
            f"    engine: {engine}\n    model_path: {path}\n    n_threads: 1\n"
            for engine, path in models.items()
        )
    )
    return ["--config", str(config)]


def move_table(options: Options) -> Table:
    """What a 4-megapixel PNG costs on its way to the handler, step by step."""
    from PIL import Image

    data = photo(2304, 1728)  # 3.98 megapixels
    encoded = base64.b64encode(data)
    reps = options.reps(15, 5)
    steps: dict[str, list[float]] = {k: [] for k in ("b64", "check", "write", "read", "decode")}
    pool = shm.ShmPool()
    cold = 0.0
    for i in range(reps + 1):  # the first makes the pool's segment
        t0 = time.perf_counter()
        raw = pybase64.b64decode(encoded, validate=True)
        t1 = time.perf_counter()
        checked_image(raw, param="bench")
        t2 = time.perf_counter()
        ref = pool.put(raw)
        t3 = time.perf_counter()
        received = shm.read(ref)
        t4 = time.perf_counter()
        with Image.open(io.BytesIO(received)) as opened:
            opened.convert("RGB")
        t5 = time.perf_counter()
        pool.release(ref)
        if i == 0:
            cold = (t3 - t2) * 1000
            continue
        for key, value in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            steps[key].append(value * 1000)
    move = [w + r for w, r in zip(steps["write"], steps["read"], strict=True)]
    table = Table(
        title=(
            f"A 4-megapixel PNG ({len(data) / 1e6:.1f} MB) to the handler: ms per step, "
            f"medians of {reps}"
        ),
        columns=["base64", "check", "to shm", "from shm", "moved", "target", "", "decode"],
    )
    moved = median(move)
    table.add(
        fmt(median(steps["b64"]), ".2f"),
        fmt(median(steps["check"]), ".2f"),
        fmt(median(steps["write"]), ".2f"),
        fmt(median(steps["read"]), ".2f"),
        fmt(moved, ".2f"),
        f"<= {MOVE_TARGET_MS:g}",
        verdict(moved <= MOVE_TARGET_MS, moved),
        fmt(median(steps["decode"]), ".1f"),
    )
    pool.close()
    table.notes += [
        f"to shm: into a segment the server's pool keeps (a new segment: {cold:.2f} ms).",
        "moved = into a shared-memory segment (server) + out of it (handler); the frame "
        "carries only the segment's name. base64 and check (Pillow's verify, no pixel "
        "decoding) happen in the server whatever the transport; decode is what any engine "
        "pays to get pixels (Pillow, to RGB).",
    ]
    return table


@register(
    "vision",
    "image chat: server vs in-process TTFT; moving a 4-MP PNG to the handler",
    needs=("xllamacpp", "gguf"),
)
def run(options: Options) -> list[Table]:
    """The two vision tables."""
    log_dir = Path(options.log_dir)
    return [ttft_table(options, log_dir), move_table(options)]
