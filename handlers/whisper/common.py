"""What both Whisper engines share: request checks, audio, segment frames.

An engine implements :meth:`WhisperEngine.segments`, a generator of decoded
segments; :meth:`WhisperEngine.handle` turns a ``Transcribe`` into
``Segment`` frames (sent as each one is decoded, the request's cancel flag
checked between them) and a closing ``Transcript``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from handlers.engine_protocol import EngineError, Send, ShouldStop
from handlers.whisper.audio_decode import SAMPLE_RATE, Samples, decode
from handlers.whisper.languages import LANGUAGES, language_code
from ipc import shm
from ipc.messages import EngineMemory, Finished, HandlerMessage, Segment, Transcribe, Transcript

# Audio whose loudest 20 ms frame stays below this (-50 dBFS) holds no speech:
# Whisper would hallucinate words ("you") into it, so it gets an empty transcript.
SILENCE_RMS = 10 ** (-50 / 20)

# Temperatures tried in turn when a window's decoding looks like a failure
# (too repetitive, too improbable): Whisper's and OpenAI's default.
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class Cancelled(Exception):
    """Raised inside an engine's decoding when its request was cancelled."""


@dataclass(frozen=True)
class Options:
    """A checked ``Transcribe``: what the engines decode with."""

    task: str
    language: str | None
    prompt: str | None
    temperatures: tuple[float, ...]
    word_timestamps: bool


def check_request(request: Transcribe, multilingual: bool, model_id: str) -> Options:
    """Options for ``request``; EngineError (a 400) for what the model cannot do."""
    if request.task == "translate" and not multilingual:
        raise EngineError(
            f"model {model_id!r} is English-only: it transcribes English speech but cannot "
            "translate; load a multilingual Whisper model (one without the '.en' suffix)",
            param="model",
        )
    language = None
    if request.language:
        language = language_code(request.language)
        if language is None:
            raise EngineError(
                f"language {request.language!r} is not one Whisper knows; use an ISO 639-1 "
                "code such as 'en' or 'de'",
                param="language",
            )
        if not multilingual and language != "en":
            raise EngineError(
                f"model {model_id!r} is English-only; language must be 'en', not "
                f"{request.language!r}",
                param="language",
            )
    if not multilingual:
        language = "en"
    temperature = request.temperature
    if temperature is not None and not 0.0 <= temperature <= 1.0:
        raise EngineError("temperature must be between 0 and 1", param="temperature")
    temperatures = FALLBACK_TEMPERATURES if not temperature else (temperature,)
    return Options(
        task=request.task,
        language=language,
        prompt=request.prompt or None,
        temperatures=temperatures,
        word_timestamps=request.word_timestamps,
    )


def is_silent(audio: Samples) -> bool:
    """True when no 20 ms frame of ``audio`` is louder than ``SILENCE_RMS``."""
    frame = SAMPLE_RATE // 50
    usable = audio[: audio.size - audio.size % frame] if audio.size >= frame else audio
    frames = usable.reshape(-1, frame) if usable.size >= frame else usable.reshape(1, -1)
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    return bool(rms.max() < SILENCE_RMS)


def language_name(code: str) -> str:
    """Whisper's English name of a language code (``english``), as OpenAI reports it."""
    return LANGUAGES.get(code, code)


class WhisperEngine:
    """Base of the Whisper engines: turns ``Transcribe`` requests into frames."""

    name = "whisper"
    context_length = 0
    parallel = 1
    multilingual = False
    model_id = ""

    def segments(
        self, audio: Samples, options: Options, should_stop: ShouldStop
    ) -> tuple[str, Iterator[Segment]]:
        """(language code, lazy segments with ``req_id`` 0 and ids from 0).

        Engines check ``should_stop`` between decoding steps (each window,
        each temperature tried) and raise :class:`Cancelled`.
        """
        raise NotImplementedError

    def memory(self) -> EngineMemory:
        """Engine-reported memory figures (none by default)."""
        return EngineMemory()

    def close(self) -> None:
        """Release the model (the process exit does it)."""

    def handle(self, request: object, send: Send, should_stop: ShouldStop) -> HandlerMessage:
        """Run one ``Transcribe``: ``Segment`` frames, then a ``Transcript``."""
        if not isinstance(request, Transcribe):
            raise EngineError(f"a Whisper model cannot serve {type(request).__name__} requests")
        options = check_request(request, self.multilingual, self.model_id)
        try:
            data = shm.unpack(request.audio)
        except shm.ShmError as exc:
            if should_stop():
                return Finished(req_id=request.req_id, reason="cancelled")
            raise EngineError(f"the uploaded audio is gone: {exc}", param="file") from exc
        audio = decode(data, request.filename)
        del data
        duration = round(audio.size / SAMPLE_RATE, 3)
        if audio.size == 0 or is_silent(audio):
            language = options.language or "en"
            return Transcript(
                req_id=request.req_id,
                language=language,
                duration=duration,
                language_name=language_name(language),
            )
        count = 0
        try:
            language, segments = self.segments(audio, options, should_stop)
            for segment in segments:
                if should_stop():
                    return Finished(req_id=request.req_id, reason="cancelled")
                segment.req_id = request.req_id
                segment.id = count
                send(segment)
                count += 1
        except Cancelled:
            return Finished(req_id=request.req_id, reason="cancelled")
        if should_stop():
            return Finished(req_id=request.req_id, reason="cancelled")
        return Transcript(
            req_id=request.req_id,
            language=language,
            duration=duration,
            n_segments=count,
            language_name=language_name(language),
        )
