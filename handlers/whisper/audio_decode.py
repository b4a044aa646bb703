"""Uploaded audio files -> 16 kHz mono float32 samples, with PyAV (FFmpeg).

Only the containers of the OpenAI audio API are accepted: wav, mp3, m4a (and
mp4), ogg, flac and webm. Anything else, a file that is not audio, or one
FFmpeg cannot decode raises :class:`AudioError` naming the problem.
"""

from __future__ import annotations

import io

import av
import numpy as np
import numpy.typing as npt

from handlers.engine_protocol import EngineError

SAMPLE_RATE = 16_000
# Longest audio decoded (a 25 MB upload of compressed speech is well under).
MAX_SECONDS = 4 * 3600

# FFmpeg demuxer names -> the format named in errors and accepted by the API.
ACCEPTED_DEMUXERS = {
    "wav": "wav",
    "mp3": "mp3",
    "mov,mp4,m4a,3gp,3g2,mj2": "m4a",
    "ogg": "ogg",
    "flac": "flac",
    "matroska,webm": "webm",
}
ACCEPTED = ("wav", "mp3", "m4a", "ogg", "flac", "webm")

Samples = npt.NDArray[np.float32]


class AudioError(EngineError):
    """The uploaded file is not audio this server decodes."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="file")


def decode(data: bytes, filename: str = "") -> Samples:
    """Decode a whole audio file to 16 kHz mono float32 samples in [-1, 1]."""
    label = repr(filename) if filename else "the uploaded file"
    if not data:
        return np.zeros(0, dtype=np.float32)
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise AudioError(
            f"{label} is not an audio file FFmpeg can read ({_reason(exc)}); "
            f"supported formats: {', '.join(ACCEPTED)}"
        ) from None
    with container:
        demuxer = container.format.name
        if demuxer not in ACCEPTED_DEMUXERS:
            raise AudioError(
                f"{label} is in the format {demuxer!r}, which is not supported; "
                f"supported formats: {', '.join(ACCEPTED)}"
            )
        if not container.streams.audio:
            raise AudioError(f"{label} has no audio stream")
        return _samples(container, label)


def _samples(container: av.container.InputContainer, label: str) -> Samples:
    resampler = av.audio.resampler.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks: list[Samples] = []
    total = 0
    try:
        for frame in container.decode(audio=0):
            frame.pts = None  # resample by sample count, whatever the timestamps say
            for out in resampler.resample(frame):
                chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                chunks.append(chunk)
                total += chunk.size
            if total > MAX_SECONDS * SAMPLE_RATE:
                raise AudioError(f"{label} is longer than {MAX_SECONDS // 3600} hours")
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
    except av.error.FFmpegError as exc:
        if not chunks:
            raise AudioError(f"{label} could not be decoded ({_reason(exc)})") from None
        # A damaged tail: keep what decoded, as FFmpeg's command line does.
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks)


def _reason(exc: av.error.FFmpegError) -> str:
    return str(getattr(exc, "strerror", None) or exc).rstrip(".")
