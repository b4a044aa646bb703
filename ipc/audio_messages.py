"""Speech-to-text frames (part of ``ipc.messages``' unions)."""

from __future__ import annotations

from typing import Literal

import msgspec

from ipc.shm_ref import ShmRef


class Transcribe(msgspec.Struct, tag="transcribe"):
    """Speech to text: ``audio`` is the uploaded file's bytes (any container
    the handler decodes), inline or in shared memory. ``task`` "translate"
    turns speech in any language into English text."""

    req_id: int
    audio: bytes | ShmRef
    filename: str = ""
    task: Literal["transcribe", "translate"] = "transcribe"
    language: str | None = None
    prompt: str | None = None
    # None: the engine's fallback schedule (0.0, 0.2, ... 1.0).
    temperature: float | None = None
    word_timestamps: bool = False
    # The HTTP request's X-Request-ID, for the handler's log lines.
    request_id: str = ""


class Word(msgspec.Struct, array_like=True):
    """A transcribed word with its start and end, in seconds."""

    word: str
    start: float
    end: float
    probability: float = 0.0


class Segment(msgspec.Struct, tag="segment", omit_defaults=True):
    """One transcribed segment of a running ``Transcribe``, sent as soon as
    it is decoded; times are seconds from the start of the audio."""

    req_id: int
    id: int
    start: float
    end: float
    text: str
    seek: int = 0
    tokens: list[int] = []
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    words: list[Word] = []


class Transcript(msgspec.Struct, tag="transcript"):
    """The last frame of a ``Transcribe``: its ``Segment`` frames came before."""

    req_id: int
    language: str  # ISO 639-1 code
    duration: float  # seconds of audio
    n_segments: int = 0
    language_name: str = ""  # Whisper's English name: "english"
