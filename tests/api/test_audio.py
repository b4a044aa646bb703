"""Speech to text through the server, on the embedded Whisper tiny.en with
both engines: faster-whisper (the default model) and mlx-whisper (the same
model converted on load)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import pytest

from bodega.settings import EMBEDDED_WHISPER_ID, embedded_whisper_path
from ipc import shm
from tests.helpers import Server, queue_stats, start_server, stop_server, wait_until
from tests.speech import (
    LONG_TEXT,
    SENTENCES,
    encode,
    require_tools,
    silence,
    speak,
    wer,
)

MLX_ID = "whisper-tiny.en-mlx"
MAX_WER = 0.25


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tools()
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def sentence_wavs(speech_dir: Path) -> list[tuple[str, Path]]:
    """Each known sentence spoken into a WAV file."""
    return [(s, speak(s, speech_dir / f"sentence{i}.wav")) for i, s in enumerate(SENTENCES)]


@pytest.fixture(scope="session")
def long_wav(speech_dir: Path) -> Path:
    """About 60 seconds of speech."""
    return speak(LONG_TEXT, speech_dir / "long.wav")


@pytest.fixture(scope="session")
def mlx_whisper(server: Server) -> Iterator[str]:
    """The embedded Whisper on mlx-whisper (converted from CTranslate2 on load)."""
    body = {
        "model_path": embedded_whisper_path(),
        "model_id": MLX_ID,
        "model_type": "whisper",
        "engine": "mlx",
    }
    r = server.client.post("/v1/admin/load-model", json=body, timeout=300)
    assert r.status_code == 201, r.text
    assert r.json()["model"]["engine"] == "mlx"
    yield MLX_ID


@pytest.fixture(params=["faster-whisper", "mlx"])
def whisper(request: pytest.FixtureRequest, server: Server) -> str:
    """Each Whisper engine in turn, on the embedded tiny.en."""
    if request.param == "mlx":
        return str(request.getfixturevalue("mlx_whisper"))
    assert server.model_info(EMBEDDED_WHISPER_ID)["engine"] == "faster-whisper"
    return EMBEDDED_WHISPER_ID


def transcribe(
    server: Server,
    path: Path,
    model: str,
    endpoint: str = "transcriptions",
    timeout: float = 300,
    **fields: Any,
) -> httpx.Response:
    """POST ``path`` as a multipart upload with ``fields``."""
    data: dict[str, Any] = {"model": model, **fields}
    files = {"file": (path.name, path.read_bytes())}
    return server.client.post(f"/v1/audio/{endpoint}", data=data, files=files, timeout=timeout)


def error(r: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = r.json()["error"]
    return body


# --- transcripts -----------------------------------------------------------


@pytest.mark.parametrize("container", ["wav", "mp3", "ogg"])
def test_transcripts_match_the_spoken_sentences(
    server: Server, whisper: str, sentence_wavs: list[tuple[str, Path]], container: str
) -> None:
    for sentence, wav in sentence_wavs:
        path = wav if container == "wav" else encode(wav, container)
        r = transcribe(server, path, whisper)
        assert r.status_code == 200, r.text
        text = r.json()["text"]
        assert wer(sentence, text) < MAX_WER, (sentence, text)


@pytest.mark.parametrize("container", ["m4a", "flac", "webm"])
def test_other_containers(
    server: Server, sentence_wavs: list[tuple[str, Path]], container: str
) -> None:
    sentence, wav = sentence_wavs[0]
    r = transcribe(server, encode(wav, container), EMBEDDED_WHISPER_ID)
    assert r.status_code == 200, r.text
    assert wer(sentence, r.json()["text"]) < MAX_WER


SRT_TIME = r"(\d\d):(\d\d):(\d\d),(\d\d\d)"
VTT_TIME = r"(\d\d):(\d\d):(\d\d)\.(\d\d\d)"


def seconds(parts: tuple[str, ...]) -> float:
    h, m, s, ms = (int(p) for p in parts)
    return h * 3600 + m * 60 + s + ms / 1000


def check_cues(cues: list[tuple[float, float, str]], duration: float) -> None:
    assert cues, "no cues"
    previous_end = 0.0
    for start, end, text in cues:
        assert text.strip()
        assert start <= end
        assert start >= previous_end - 0.01, "cues overlap or go backwards"
        previous_end = end
    assert cues[-1][1] <= duration + 1.0


def test_srt_and_vtt_are_well_formed(
    server: Server, whisper: str, sentence_wavs: list[tuple[str, Path]], long_wav: Path
) -> None:
    # Two sentences in one file: several cues.
    sentence = f"{SENTENCES[0]} {SENTENCES[1]}"
    wav = speak(sentence, long_wav.with_name("two-sentences.wav"))
    srt = transcribe(server, wav, whisper, response_format="srt")
    assert srt.status_code == 200, srt.text
    blocks = srt.text.strip().split("\n\n")
    cues = []
    for number, block in enumerate(blocks, start=1):
        lines = block.split("\n")
        assert lines[0] == str(number)
        m = re.fullmatch(f"{SRT_TIME} --> {SRT_TIME}", lines[1])
        assert m, lines[1]
        cues.append((seconds(m.groups()[:4]), seconds(m.groups()[4:]), " ".join(lines[2:])))
    check_cues(cues, 10.0)
    assert wer(sentence, " ".join(c[2] for c in cues)) < MAX_WER

    vtt = transcribe(server, wav, whisper, response_format="vtt")
    assert vtt.status_code == 200, vtt.text
    assert vtt.headers["content-type"].startswith("text/vtt")
    assert vtt.text.startswith("WEBVTT\n\n")
    vtt_cues = []
    for block in vtt.text[len("WEBVTT\n\n") :].strip().split("\n\n"):
        lines = block.split("\n")
        m = re.fullmatch(f"{VTT_TIME} --> {VTT_TIME}", lines[0])
        assert m, lines[0]
        vtt_cues.append((seconds(m.groups()[:4]), seconds(m.groups()[4:]), " ".join(lines[1:])))
    check_cues(vtt_cues, 10.0)
    assert [c[2] for c in vtt_cues] == [c[2] for c in cues]


def test_verbose_json_has_segments_words_language_duration(
    server: Server, whisper: str, sentence_wavs: list[tuple[str, Path]]
) -> None:
    sentence, wav = sentence_wavs[1]
    r = transcribe(
        server,
        wav,
        whisper,
        response_format="verbose_json",
        **{"timestamp_granularities[]": ["segment", "word"]},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["task"] == "transcribe"
    assert body["language"] == "english"
    assert 1.0 < body["duration"] < 10.0
    assert wer(sentence, body["text"]) < MAX_WER
    segments = body["segments"]
    assert segments and [s["id"] for s in segments] == list(range(len(segments)))
    assert "".join(s["text"] for s in segments).strip() == body["text"]
    for s in segments:
        assert 0.0 <= s["start"] <= s["end"] <= body["duration"] + 1.0
        assert s["tokens"] and isinstance(s["avg_logprob"], float)
    words = body["words"]
    assert wer(sentence, " ".join(w["word"] for w in words)) < MAX_WER
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    assert all(w["start"] <= w["end"] for w in words)

    only_words = transcribe(
        server,
        wav,
        whisper,
        response_format="verbose_json",
        **{"timestamp_granularities[]": "word"},
    ).json()
    assert "segments" not in only_words and only_words["words"]


def test_prompt_language_and_temperature_reach_the_engine(
    server: Server, whisper: str, sentence_wavs: list[tuple[str, Path]]
) -> None:
    sentence, wav = sentence_wavs[1]
    r = transcribe(
        server,
        wav,
        whisper,
        language="en",
        prompt="A family conversation about cars.",
        temperature="0.2",
        response_format="verbose_json",
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert wer(sentence, body["text"]) < MAX_WER
    # One temperature asked for: no fallback schedule, every window used it.
    assert {s["temperature"] for s in body["segments"]} == {0.2}


def test_text_format(server: Server, sentence_wavs: list[tuple[str, Path]]) -> None:
    sentence, wav = sentence_wavs[2]
    r = transcribe(server, wav, EMBEDDED_WHISPER_ID, response_format="text")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert wer(sentence, r.text) < MAX_WER


def test_stream_sends_segments_as_sse(
    server: Server, whisper: str, sentence_wavs: list[tuple[str, Path]]
) -> None:
    sentence, wav = sentence_wavs[0]
    files = {"file": (wav.name, wav.read_bytes())}
    data = {"model": whisper, "stream": "true"}
    events = []
    with server.client.stream(
        "POST", "/v1/audio/transcriptions", data=data, files=files, timeout=120
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    *deltas, done = events
    assert deltas and all(e["type"] == "transcript.text.delta" for e in deltas)
    assert done["type"] == "transcript.text.done"
    assert "".join(e["delta"] for e in deltas) == done["text"]
    assert wer(sentence, done["text"]) < MAX_WER
    assert done["usage"]["seconds"] >= 1


def test_a_sixty_second_file(server: Server, whisper: str, long_wav: Path) -> None:
    assert long_wav.stat().st_size > shm.THRESHOLD  # it travels in shared memory
    r = transcribe(server, long_wav, whisper, response_format="verbose_json")
    assert r.status_code == 200, r.text
    # The server unlinked the segment it made for the upload.
    if Path("/dev/shm").is_dir():
        assert not list(Path("/dev/shm").glob(f"{shm.PREFIX}{server.process.pid}-*"))
    body = r.json()
    assert 50 < body["duration"] < 75
    assert wer(LONG_TEXT, body["text"]) < MAX_WER
    segments = body["segments"]
    assert len(segments) > 3
    # The transcript covers the whole file, across Whisper's 30-second windows.
    assert segments[-1]["end"] > body["duration"] - 10
    assert [s["start"] for s in segments] == sorted(s["start"] for s in segments)


# --- empty, silent, cancelled ------------------------------------------------


def test_empty_and_silent_audio_give_empty_transcripts(
    server: Server, whisper: str, speech_dir: Path
) -> None:
    quiet = silence(speech_dir / "silence.wav", 3)
    r = transcribe(server, quiet, whisper, response_format="verbose_json")
    assert r.status_code == 200, r.text
    assert r.json()["text"] == ""
    assert r.json()["segments"] == []
    assert r.json()["duration"] == pytest.approx(3.0, abs=0.1)

    empty = speech_dir / "empty.wav"
    empty.write_bytes(b"")
    r = transcribe(server, empty, whisper)
    assert r.status_code == 200, r.text
    assert r.json()["text"] == ""


def handler_cpu(server: Server, model: str) -> float:
    times = psutil.Process(server.model_info(model)["pid"]).cpu_times()
    return float(times.user + times.system)


def assert_idle(server: Server, model: str) -> None:
    """The handler's work stopped: nothing running, and no CPU burnt for a second."""
    wait_until(lambda: queue_stats(server, model)["running"] == 0, timeout=15)

    def quiet() -> bool:
        before = handler_cpu(server, model)
        import time

        time.sleep(1.0)
        return handler_cpu(server, model) - before < 0.3

    wait_until(quiet, timeout=15, interval=0)


@pytest.fixture(params=["faster-whisper", "mlx"])
def one_slot_whisper(server: Server, request: pytest.FixtureRequest) -> Iterator[str]:
    """A one-slot copy of the embedded Whisper on each engine."""
    model_id = f"whisper-one-slot-{request.param}"
    body = {
        "model_path": embedded_whisper_path(),
        "model_id": model_id,
        "model_type": "whisper",
        "engine": request.param,
        "max_concurrency": 1,
    }
    r = server.client.post("/v1/admin/load-model", json=body, timeout=120)
    assert r.status_code == 201, r.text
    yield model_id
    server.unload(model_id)


def test_client_disconnect_frees_the_handler(
    server: Server, one_slot_whisper: str, long_wav: Path, sentence_wavs: list[tuple[str, Path]]
) -> None:
    model = one_slot_whisper
    # Two minutes of speech: far longer to decode than the test waits.
    long_text = LONG_TEXT + " " + LONG_TEXT
    longer = speak(long_text, long_wav.with_name("longer.wav"))
    files = {"file": (longer.name, longer.read_bytes())}

    # A stream left after its first segment.
    with server.client.stream(
        "POST",
        "/v1/audio/transcriptions",
        data={"model": model, "stream": "true"},
        files=files,
        timeout=120,
    ) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                break
    assert_idle(server, model)

    # A plain request whose client gives up while the handler works.
    with pytest.raises(httpx.ReadTimeout):
        server.client.post(
            "/v1/audio/transcriptions",
            data={"model": model},
            files=files,
            timeout=httpx.Timeout(30, read=2.0),
        )
    assert_idle(server, model)

    # The slot is free for the next request.
    sentence, wav = sentence_wavs[1]
    r2 = transcribe(server, wav, model, timeout=60)
    assert r2.status_code == 200
    assert wer(sentence, r2.json()["text"]) < MAX_WER


# --- bad requests -------------------------------------------------------------


def test_no_file_is_400(server: Server) -> None:
    multipart = server.client.post(
        "/v1/audio/transcriptions",
        data={"model": EMBEDDED_WHISPER_ID},
        files={"prompt": (None, "hello")},
    )
    urlencoded = server.client.post("/v1/audio/transcriptions", data={"model": EMBEDDED_WHISPER_ID})
    for r in (multipart, urlencoded):
        assert r.status_code == 400, r.text
        assert error(r)["param"] == "file"
        assert "file is required" in error(r)["message"]


def test_not_audio_is_400_naming_the_problem(server: Server, speech_dir: Path) -> None:
    junk = speech_dir / "junk.wav"
    junk.write_bytes(b"this is not audio at all, just some text " * 50)
    r = transcribe(server, junk, EMBEDDED_WHISPER_ID)
    assert r.status_code == 400, r.text
    assert error(r)["param"] == "file"
    assert "junk.wav" in error(r)["message"] and "not an audio file" in error(r)["message"]


def test_unsupported_formats_are_400(
    server: Server, sentence_wavs: list[tuple[str, Path]], speech_dir: Path
) -> None:
    aiff = encode(sentence_wavs[0][1], "aiff")
    r = transcribe(server, aiff, EMBEDDED_WHISPER_ID)
    assert r.status_code == 400
    assert error(r)["param"] == "file" and "'aiff' is not supported" in error(r)["message"]
    # The bytes decide, not only the name: AIFF named .wav.
    disguised = speech_dir / "aiff-inside.wav"
    disguised.write_bytes(aiff.read_bytes())
    r = transcribe(server, disguised, EMBEDDED_WHISPER_ID)
    assert r.status_code == 400
    assert "format 'aiff'" in error(r)["message"]


def test_translation_with_an_english_only_model_is_400(
    server: Server, whisper: str, sentence_wavs: list[tuple[str, Path]]
) -> None:
    r = transcribe(server, sentence_wavs[0][1], whisper, endpoint="translations")
    assert r.status_code == 400
    assert error(r)["param"] == "model"
    assert "English-only" in error(r)["message"]


@pytest.mark.parametrize(
    ("fields", "param", "status"),
    [
        ({"model": "smollm2-135m"}, "model", 400),
        ({"model": "no-such-model"}, "model", 404),
        ({"model": ""}, "model", 400),
        ({"response_format": "xml"}, "response_format", 400),
        ({"timestamp_granularities[]": "word"}, "timestamp_granularities[]", 400),
        (
            {"response_format": "verbose_json", "timestamp_granularities[]": "char"},
            "timestamp_granularities[]",
            400,
        ),
        ({"temperature": "2"}, "temperature", 400),
        ({"temperature": "warm"}, "temperature", 400),
        ({"language": "fr"}, "language", 400),
        ({"language": "klingon"}, "language", 400),
        ({"stream": "maybe"}, "stream", 400),
        ({"stream": "true", "response_format": "srt"}, "stream", 400),
        ({"n": "2"}, "n", 400),
    ],
)
def test_bad_fields_are_4xx_naming_the_field(
    server: Server,
    sentence_wavs: list[tuple[str, Path]],
    fields: dict[str, str],
    param: str,
    status: int,
) -> None:
    data = {"model": EMBEDDED_WHISPER_ID, **fields}
    wav = sentence_wavs[2][1]
    r = server.client.post(
        "/v1/audio/transcriptions", data=data, files={"file": (wav.name, wav.read_bytes())}
    )
    assert r.status_code == status, r.text
    assert error(r)["param"] == param


def test_a_json_body_is_415(server: Server) -> None:
    r = server.client.post("/v1/audio/transcriptions", json={"model": EMBEDDED_WHISPER_ID})
    assert r.status_code == 415
    assert "multipart/form-data" in error(r)["message"]


def test_over_the_default_size_limit_is_413(server: Server) -> None:
    big = b"\0" * (25 * 1024 * 1024 + 1)
    r = server.client.post(
        "/v1/audio/transcriptions",
        data={"model": EMBEDDED_WHISPER_ID},
        files={"file": ("big.wav", big)},
    )
    assert r.status_code == 413
    assert error(r)["type"] == "invalid_request_error"


def test_the_size_limit_is_configurable(
    tmp_path: Path, sentence_wavs: list[tuple[str, Path]]
) -> None:
    wav = sentence_wavs[0][1]
    size = wav.stat().st_size
    config = tmp_path / "config.yaml"
    config.write_text(
        f"server:\n  max_audio_bytes: {size - 1}\n"
        f"models:\n  - model_id: w\n    model_type: whisper\n"
        f"    model_path: {embedded_whisper_path()}\n"
    )
    small = start_server("--config", str(config))
    try:
        wait_until(lambda: small.client.get("/health").status_code == 200, timeout=120)
        r = transcribe(small, wav, "w")
        assert r.status_code == 413, r.text
        assert error(r)["param"] == "file"
        short = speak("Hello there.", tmp_path / "short.wav")
        assert short.stat().st_size < size
        assert transcribe(small, short, "w").status_code == 200
    finally:
        stop_server(small)


# --- the official SDK ---------------------------------------------------------


@pytest.fixture
def sdk(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_openai_sdk_transcribes(
    sdk: openai.OpenAI, whisper: str, sentence_wavs: list[tuple[str, Path]]
) -> None:
    sentence, wav = sentence_wavs[1]
    with wav.open("rb") as f:
        plain = sdk.audio.transcriptions.create(model=whisper, file=f)
    assert wer(sentence, plain.text) < MAX_WER

    with wav.open("rb") as f:
        verbose = sdk.audio.transcriptions.create(
            model=whisper,
            file=f,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    assert verbose.language == "english" and verbose.duration > 1
    assert verbose.segments and verbose.words
    assert wer(sentence, " ".join(w.word for w in verbose.words)) < MAX_WER

    with wav.open("rb") as f:
        subtitles = sdk.audio.transcriptions.create(model=whisper, file=f, response_format="srt")
    assert subtitles.startswith("1\n00:00:0")

    with wav.open("rb") as f:
        events = list(sdk.audio.transcriptions.create(model=whisper, file=f, stream=True))
    assert events[-1].type == "transcript.text.done"
    deltas = "".join(e.delta for e in events if e.type == "transcript.text.delta")
    assert deltas == events[-1].text and wer(sentence, deltas) < MAX_WER


def test_openai_sdk_errors(sdk: openai.OpenAI, sentence_wavs: list[tuple[str, Path]]) -> None:
    wav = sentence_wavs[0][1]
    with wav.open("rb") as f, pytest.raises(openai.BadRequestError) as info:
        sdk.audio.translations.create(model=EMBEDDED_WHISPER_ID, file=f)
    assert "English-only" in str(info.value)
    with wav.open("rb") as f, pytest.raises(openai.NotFoundError):
        sdk.audio.transcriptions.create(model="whisper-1", file=f)


def test_chat_with_a_whisper_model_is_400(server: Server) -> None:
    r = server.client.post(
        "/v1/chat/completions",
        json={"model": EMBEDDED_WHISPER_ID, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 400, r.text
    assert error(r)["param"] == "model"
    assert "/v1/audio/transcriptions" in error(r)["message"]
