"""Speech to text: Bodega versus faster-whisper-server, on the same CTranslate2 folder.

faster-whisper-server (PyPI, 0.0.3: an OpenAI-compatible FastAPI server over
faster-whisper) installs into ``.venv-peers`` with infinity-emb
(``make peers-env``). Both servers load the embedded Whisper tiny.en folder
with their defaults and transcribe the same 30-second espeak-ng clip through
``POST /v1/audio/transcriptions``, alternating; the figure is the real-time
factor (audio seconds / wall seconds, upload included) and Bodega's over the
peer's per pair. That server reads the model from a form field ``model_name``
(not OpenAI's ``model``); it serves one model, so either way it answers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from bodega.settings import EMBEDDED_WHISPER_ID, embedded_whisper_path

from .registry import Options
from .report import Table, fmt, median, spread, verdict
from .server import PEERS_VENV, BodegaServer, ServerProcess
from .whisper import CLIP_SECONDS, make_clip, server_seconds

PEER_NAME = "faster-whisper-server"
TARGET = 1.0


def _peer_seconds(client: httpx.Client, clip: Path) -> float:
    return server_seconds(client, EMBEDDED_WHISPER_ID, clip, model_field="model_name")


def compare_speech(options: Options, records: list[dict[str, Any]]) -> Table:
    """Alternating transcriptions of one clip on both servers; the table."""
    python = PEERS_VENV / "bin" / "python"
    folder = embedded_whisper_path()
    if not python.exists() or folder is None:
        return Table(f"Speech vs {PEER_NAME}: skipped (run `make peers-env`)", ["-"])
    log_dir = Path(options.log_dir)
    clip = make_clip(log_dir)
    config = log_dir / "peers-whisper.yaml"
    config.write_text(
        f"models:\n  - model_id: {EMBEDDED_WHISPER_ID}\n    model_type: whisper\n"
        f"    engine: faster-whisper\n    model_path: {folder}\n"
    )
    peer = ServerProcess(
        PEER_NAME,
        lambda port: [
            str(python),
            "-m",
            "faster_whisper_server",
            str(folder),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        log_dir / "peers-faster-whisper-server.log",
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        start_timeout=300.0,
    )
    reps = options.reps(6, 2)
    ours: list[float] = []
    theirs: list[float] = []
    with (
        BodegaServer(log_dir / "peers-bodega-whisper.log", ["--config", str(config)]) as server,
        peer,
        httpx.Client(base_url=server.base_url) as bodega,
        httpx.Client(base_url=peer.base_url) as other,
    ):
        server_seconds(bodega, EMBEDDED_WHISPER_ID, clip)  # warm both
        _peer_seconds(other, clip)
        for k in range(reps):
            if k % 2 == 0:
                ours.append(server_seconds(bodega, EMBEDDED_WHISPER_ID, clip))
                theirs.append(_peer_seconds(other, clip))
            else:
                theirs.append(_peer_seconds(other, clip))
                ours.append(server_seconds(bodega, EMBEDDED_WHISPER_ID, clip))
    ratios = [t / o for o, t in zip(ours, theirs, strict=True)]
    ratio = median(ratios)
    rtf = {"bodega": CLIP_SECONDS / median(ours), PEER_NAME: CLIP_SECONDS / median(theirs)}
    table = Table(
        title=f"Speech vs {PEER_NAME}: Whisper tiny.en (CTranslate2), {CLIP_SECONDS:g} s clip, "
        f"real-time factor (audio s / wall s), medians of {reps}",
        columns=["server", "RTF", "ratio", "target", "", "ratio min-max"],
    )
    table.add(
        "bodega",
        fmt(rtf["bodega"], ".1f"),
        fmt(ratio, ".2f", prefix="x"),
        f">= x{TARGET:g}",
        verdict(ratio >= TARGET, ratio),
        spread(ratios, "{:.2f}"),
    )
    table.add(PEER_NAME, fmt(rtf[PEER_NAME], ".1f"), "", "", "", "")
    table.notes.append("ratio: the peer's wall seconds over Bodega's per pair, median.")
    records.append(
        {
            "kind": "speech",
            "peer": PEER_NAME,
            "ratio": ratio,
            "ratios": ratios,
            "rtf": rtf,
            "ok": ratio >= TARGET,
        }
    )
    return table
