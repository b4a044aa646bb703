"""OpenAI audio API bodies (transcriptions, translations) and subtitle text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

from ipc.messages import Segment

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
RESPONSE_FORMATS: tuple[str, ...] = ("json", "text", "srt", "vtt", "verbose_json")


class DurationUsage(msgspec.Struct):
    """``usage`` of a Whisper transcription: billed by audio seconds."""

    seconds: int
    type: str = "duration"


class Transcription(msgspec.Struct):
    """``response_format: json``."""

    text: str
    usage: DurationUsage | None = None


class WordOut(msgspec.Struct):
    """One entry of ``words`` (``timestamp_granularities[]=word``)."""

    word: str
    start: float
    end: float


class SegmentOut(msgspec.Struct):
    """One entry of ``segments`` in ``verbose_json``."""

    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class VerboseTranscription(msgspec.Struct, omit_defaults=True):
    """``response_format: verbose_json``: language, duration, segments, words."""

    task: str
    language: str
    duration: float
    text: str
    segments: list[SegmentOut] | None = None
    words: list[WordOut] | None = None
    usage: DurationUsage | None = None


class TextDelta(msgspec.Struct):
    """SSE event ``transcript.text.delta``: the text of the next segment."""

    delta: str
    type: str = "transcript.text.delta"


class TextDone(msgspec.Struct):
    """SSE event ``transcript.text.done``: the whole text, last event of a stream."""

    text: str
    usage: DurationUsage | None = None
    type: str = "transcript.text.done"


def segment_out(segment: Segment) -> SegmentOut:
    """A handler ``Segment`` as OpenAI's ``verbose_json`` segment."""
    return SegmentOut(
        id=segment.id,
        seek=segment.seek,
        start=round(segment.start, 3),
        end=round(segment.end, 3),
        text=segment.text,
        tokens=segment.tokens,
        temperature=segment.temperature,
        avg_logprob=segment.avg_logprob,
        compression_ratio=segment.compression_ratio,
        no_speech_prob=segment.no_speech_prob,
    )


def words_out(segments: Sequence[Segment]) -> list[WordOut]:
    """Every word of ``segments`` with its times, in order."""
    return [
        WordOut(word=w.word.strip(), start=round(w.start, 3), end=round(w.end, 3))
        for s in segments
        for w in s.words
    ]


def _timestamp(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cues(segments: Sequence[Segment]) -> list[tuple[float, float, str]]:
    """(start, end, text) per segment with text; an end never before its start."""
    cues = []
    for s in segments:
        text = s.text.strip()
        if text:
            cues.append((s.start, max(s.end, s.start), text))
    return cues


def srt(segments: Sequence[Segment]) -> str:
    """SubRip subtitles: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``."""
    blocks = [
        f"{i}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n{text}\n"
        for i, (start, end, text) in enumerate(_cues(segments), start=1)
    ]
    return "\n".join(blocks)


def vtt(segments: Sequence[Segment]) -> str:
    """WebVTT subtitles: a ``WEBVTT`` header, cues ``HH:MM:SS.mmm --> HH:MM:SS.mmm``."""
    blocks = [
        f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}\n{text}\n"
        for start, end, text in _cues(segments)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)
