"""Speech to text on a Whisper model: admission, shared memory, handler stream.

``transcribe`` is an async generator of ``Segment`` frames ending with one
``Transcript``. The audio travels to the handler in a shared-memory segment
this process creates and unlinks when the request ends (inline below
``ipc.shm.THRESHOLD``). Leaving the generator early (client gone) cancels the
work in the handler.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

from bodega.errors import HandlerFailed, InvalidRequest
from bodega.registry.model import Model
from ipc import shm
from ipc.messages import Finished, Segment, Transcribe, Transcript

# The containers a client may upload (the handler checks the bytes too).
AUDIO_FORMATS = ("wav", "mp3", "m4a", "ogg", "flac", "webm")
# File name extensions accepted for them.
AUDIO_EXTENSIONS = frozenset({*AUDIO_FORMATS, "mp4", "mpeg", "mpga", "oga", "opus", "weba"})


@dataclass(frozen=True)
class AudioRequest:
    """One transcription or translation, as the handler gets it."""

    audio: bytes
    filename: str
    task: str = "transcribe"
    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None
    word_timestamps: bool = False


def check_extension(filename: str) -> None:
    """InvalidRequest when the file name's extension names an unsupported format."""
    name = filename.rsplit("/", 1)[-1]
    if "." not in name:
        return  # no claim made: the handler decides from the bytes
    extension = name.rsplit(".", 1)[-1].lower()
    if extension not in AUDIO_EXTENSIONS:
        raise InvalidRequest(
            f"file format {extension!r} is not supported; supported formats: "
            + ", ".join(AUDIO_FORMATS),
            param="file",
            code="invalid_file_format",
        )


async def transcribe(
    model: Model, request: AudioRequest
) -> AsyncGenerator[Segment | Transcript, None]:
    """Run one transcription on ``model`` (a Whisper model) and yield its frames."""
    owner = shm.ShmOwner()
    try:
        message = Transcribe(
            req_id=0,
            audio=shm.pack(request.audio, owner),
            filename=request.filename,
            task="translate" if request.task == "translate" else "transcribe",
            language=request.language,
            prompt=request.prompt,
            temperature=request.temperature,
            word_timestamps=request.word_timestamps,
        )
        async with aclosing(model.stream(message)) as frames:
            async for frame in frames:
                if isinstance(frame, Segment):
                    yield frame
                elif isinstance(frame, Transcript):
                    yield frame
                    return
                elif isinstance(frame, Finished):
                    break  # cancelled behind our back (the handler is stopping)
    finally:
        owner.release_all()
    raise HandlerFailed("The model stopped answering before the transcription finished.")
