"""``POST /v1/audio/transcriptions`` and ``POST /v1/audio/translations``.

Multipart bodies as OpenAI takes them: ``file``, ``model``, ``language``,
``prompt``, ``temperature``, ``response_format`` (json, text, srt, vtt,
verbose_json), ``timestamp_granularities[]`` (segment, word) and ``stream``
(SSE: ``transcript.text.delta`` per segment, then ``transcript.text.done``).
The transcription starts before the response does, so that a failure before
any output (bad audio, unknown model, full queue) is a proper HTTP status.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

import trio
from quart import Blueprint, Response, current_app, request
from werkzeug.datastructures import FileStorage, MultiDict

from bodega.errors import (
    BodegaError,
    ExecutionTimeout,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    error_body,
)
from bodega.openai import sse
from bodega.openai.audio import (
    RESPONSE_FORMATS,
    DurationUsage,
    TextDelta,
    TextDone,
    Transcription,
    VerboseTranscription,
    segment_out,
    srt,
    vtt,
    words_out,
)
from bodega.runtime_config import execution_limit
from bodega.services.audio import AudioRequest, check_extension, transcribe
from bodega.services.frames import first_frame, gather
from bodega.settings import Settings
from ipc.messages import Segment, Transcript

from .common import json_response, limits, registry, sse_response

blueprint = Blueprint("audio", __name__)

Frames = AsyncGenerator[Segment | Transcript, None]

FIELDS = frozenset(
    {
        "file",
        "model",
        "language",
        "prompt",
        "temperature",
        "response_format",
        "timestamp_granularities[]",
        "timestamp_granularities",
        "stream",
    }
)
GRANULARITIES = ("segment", "word")
# Room for the multipart framing and the other fields around the file.
FORM_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class Form:
    """The checked fields of one audio request."""

    model: str
    response_format: str
    granularities: tuple[str, ...]
    stream: bool


def _one(form: MultiDict[str, str], name: str) -> str | None:
    values = form.getlist(name)
    if len(values) > 1:
        raise InvalidRequest(f"{name} was given {len(values)} times", param=name)
    return values[0] if values else None


def _bool(value: str | None, name: str) -> bool:
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0", ""):
        return False
    raise InvalidRequest(f"{name} must be true or false, not {value!r}", param=name)


def _temperature(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        temperature = float(value)
    except ValueError:
        raise InvalidRequest(
            f"temperature must be a number, not {value!r}", param="temperature"
        ) from None
    if not 0.0 <= temperature <= 1.0:
        raise InvalidRequest("temperature must be between 0 and 1", param="temperature")
    return temperature


async def _read_form(max_audio: int) -> tuple[MultiDict[str, str], FileStorage]:
    mimetype = request.mimetype
    if mimetype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise UnsupportedMediaType(
            f"expected a multipart/form-data body with a file field, not {mimetype or 'nothing'!r}"
        )
    if request.content_length is not None and request.content_length > max_audio + FORM_OVERHEAD:
        raise PayloadTooLarge(
            f"the upload is larger than the {max_audio} bytes allowed for audio files",
            param="file",
        )
    form = await request.form
    files = await request.files
    unknown = sorted((set(form) | set(files)) - FIELDS)
    if unknown:
        raise InvalidRequest(
            f"Unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}",
            param=unknown[0],
        )
    if "file" in form:
        raise InvalidRequest("file must be an uploaded file, not a text field", param="file")
    uploads = files.getlist("file")
    if not uploads:
        raise InvalidRequest("file is required: upload the audio as a file field", param="file")
    if len(uploads) > 1:
        raise InvalidRequest("upload one file per request", param="file")
    return form, uploads[0]


def _check_form(form: MultiDict[str, str]) -> Form:
    model = _one(form, "model")
    if not model:
        raise InvalidRequest("model is required", param="model")
    response_format = _one(form, "response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise InvalidRequest(
            f"response_format must be one of {', '.join(RESPONSE_FORMATS)}, "
            f"not {response_format!r}",
            param="response_format",
        )
    name = "timestamp_granularities[]"
    granularities = form.getlist(name) + form.getlist("timestamp_granularities")
    for value in granularities:
        if value not in GRANULARITIES:
            raise InvalidRequest(f"{name} takes segment and word, not {value!r}", param=name)
    if granularities and response_format != "verbose_json":
        raise InvalidRequest(f"{name} needs response_format verbose_json", param=name)
    stream = _bool(_one(form, "stream"), "stream")
    if stream and response_format not in ("json", "text"):
        raise InvalidRequest(
            f"stream is supported with response_format json or text, not {response_format!r}",
            param="stream",
        )
    return Form(
        model=model,
        response_format=response_format,
        granularities=tuple(dict.fromkeys(granularities)) or ("segment",),
        stream=stream,
    )


def _usage(transcript: Transcript) -> DurationUsage:
    return DurationUsage(seconds=math.ceil(transcript.duration))


def _text(segments: list[Segment]) -> str:
    return "".join(s.text for s in segments).strip()


def _events(first: Segment | Transcript, frames: Frames) -> AsyncGenerator[bytes, None]:
    async def events() -> AsyncGenerator[bytes, None]:
        parts: list[str] = []
        async with aclosing(frames):
            frame = first
            try:
                while isinstance(frame, Segment):
                    delta = frame.text if parts else frame.text.lstrip()
                    if delta:
                        parts.append(delta)
                        yield sse.event(TextDelta(delta=delta))
                    frame = await frames.__anext__()
                yield sse.event(TextDone(text="".join(parts).rstrip(), usage=_usage(frame)))
            except BodegaError as exc:
                yield sse.event(error_body(exc))

    return events()


def _respond(form: Form, task: str, segments: list[Segment], transcript: Transcript) -> Response:
    text = _text(segments)
    fmt = form.response_format
    if fmt == "json":
        return json_response(Transcription(text=text, usage=_usage(transcript)))
    if fmt == "text":
        return Response(text + "\n", content_type="text/plain; charset=utf-8")
    if fmt == "srt":
        return Response(srt(segments), content_type="application/x-subrip; charset=utf-8")
    if fmt == "vtt":
        return Response(vtt(segments), content_type="text/vtt; charset=utf-8")
    return json_response(
        VerboseTranscription(
            task=task,
            language=transcript.language_name or transcript.language,
            duration=transcript.duration,
            text=text,
            segments=[segment_out(s) for s in segments]
            if "segment" in form.granularities
            else None,
            words=words_out(segments) if "word" in form.granularities else None,
            usage=_usage(transcript),
        )
    )


async def _audio(task: str) -> Response:
    max_audio = limits().audio_bytes
    form_fields, upload = await _read_form(max_audio)
    form = _check_form(form_fields)
    model = await registry().find(form.model, kinds=("whisper",))
    filename = upload.filename or ""
    check_extension(filename)
    data = await trio.to_thread.run_sync(upload.stream.read, max_audio + 1)
    upload.close()
    if len(data) > max_audio:
        raise PayloadTooLarge(
            f"the audio file is larger than the {max_audio} bytes allowed", param="file"
        )
    audio_request = AudioRequest(
        audio=data,
        filename=filename,
        task=task,
        language=_one(form_fields, "language") or None,
        prompt=_one(form_fields, "prompt") or None,
        temperature=_temperature(_one(form_fields, "temperature")),
        word_timestamps="word" in form.granularities,
    )
    frames = transcribe(model, audio_request)
    settings: Settings = current_app.extensions["bodega.settings"]
    # A stream is bounded until its first frame; a whole answer until its end.
    try:
        with execution_limit(settings.runtime.audio_timeout_sec, "the audio request"):
            first = await first_frame(frames)
            if form.stream:
                return sse_response(_events(first, frames))
            segments, transcript = await gather(first, frames, Segment, Transcript)
    except ExecutionTimeout:
        await frames.aclose()
        raise
    return _respond(form, task, segments, transcript)


@blueprint.post("/v1/audio/transcriptions")
async def transcriptions() -> Response:
    """Speech to text in the language spoken."""
    return await _audio("transcribe")


@blueprint.post("/v1/audio/translations")
async def translations() -> Response:
    """Speech in any language to English text (needs a multilingual model)."""
    return await _audio("translate")
