"""Whisper on faster-whisper (CTranslate2): the portable engine.

faster-whisper decodes lazily, one 30-second window at a time, so segments
go to the client as they are decoded and a cancelled request stops at the
next segment. ``max_concurrency`` becomes CTranslate2's worker count, so
that many requests decode in parallel.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from catalog.files import is_ct2_whisper
from catalog.options import LoadOptions
from handlers.device import ct2_device
from handlers.engine_protocol import LoadError, ShouldStop
from handlers.whisper.audio_decode import Samples
from handlers.whisper.common import Cancelled, Options, WhisperEngine
from ipc.messages import Segment, Word

BEAM_SIZE = 5  # faster-whisper's default: better words than greedy for tiny models


def cpu_threads(requested: int | None) -> int:
    """``n_threads``, else CTranslate2's default of 4 capped at the core count
    (4 threads on 2 cores oversubscribe the CPU)."""
    return requested or min(4, os.cpu_count() or 1)


def _device(requested: str | None) -> tuple[str, int, str]:
    """(device, index, compute type): float16 on a GPU, float32 on CPUs (which
    have no fast float16; CTranslate2 would convert with a warning)."""
    device, index = ct2_device(requested)
    return device, index, "float16" if device == "cuda" else "float32"


class FasterWhisperEngine(WhisperEngine):
    """A CTranslate2 Whisper model folder served by faster-whisper."""

    name = "faster-whisper"

    def __init__(self, spec: LoadOptions) -> None:
        from faster_whisper import WhisperModel

        folder = Path(spec.model_path)
        if not is_ct2_whisper(folder):
            raise LoadError(
                f"{spec.model_path!r} is not a faster-whisper (CTranslate2) model folder "
                "with model.bin and config.json"
            )
        self.model_id = spec.id
        self.parallel = max(1, spec.max_concurrency)
        device, index, compute_type = _device(spec.device)
        try:
            self._model = WhisperModel(
                str(folder),
                device=device,
                device_index=index,
                compute_type=compute_type,
                cpu_threads=cpu_threads(spec.n_threads),
                num_workers=self.parallel,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise LoadError(f"faster-whisper could not load {folder}: {exc}") from exc
        self.multilingual = bool(self._model.model.is_multilingual)
        self._interruptible = _Interruptible(self._model.model)
        self._model.model = self._interruptible

    def segments(
        self, audio: Samples, options: Options, should_stop: ShouldStop
    ) -> tuple[str, Iterator[Segment]]:
        """Start decoding; segments come lazily, window by window."""
        self._interruptible.should_stop = should_stop
        pieces, info = self._model.transcribe(
            audio,
            language=options.language,
            task=options.task,
            beam_size=BEAM_SIZE,
            temperature=list(options.temperatures),
            initial_prompt=options.prompt,
            word_timestamps=options.word_timestamps,
            condition_on_previous_text=True,
            vad_filter=False,
        )
        return info.language, (_segment(piece) for piece in pieces if piece.text.strip())


class _Interruptible:
    """The CTranslate2 model behind faster-whisper, checking the running
    request's cancel flag before each call: a window's beam search, each
    fallback temperature, the encoder. The flag is per thread, one request
    per engine thread."""

    _CHECKED = frozenset({"generate", "encode", "align", "detect_language"})

    def __init__(self, model: Any) -> None:
        self._model = model
        self._local = threading.local()

    @property
    def should_stop(self) -> ShouldStop | None:
        """The cancel flag of this thread's request."""
        flag: ShouldStop | None = getattr(self._local, "should_stop", None)
        return flag

    @should_stop.setter
    def should_stop(self, flag: ShouldStop) -> None:
        self._local.should_stop = flag

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._model, name)
        if name not in self._CHECKED:
            return attribute

        def checked(*args: Any, **kwargs: Any) -> Any:
            flag = self.should_stop
            if flag is not None and flag():
                raise Cancelled
            return attribute(*args, **kwargs)

        return checked


def _segment(piece: Any) -> Segment:
    words = [
        Word(word=w.word, start=float(w.start), end=float(w.end), probability=float(w.probability))
        for w in piece.words or []
    ]
    return Segment(
        req_id=0,
        id=0,
        start=float(piece.start),
        end=float(piece.end),
        text=piece.text,
        seek=int(piece.seek),
        tokens=list(piece.tokens),
        temperature=float(piece.temperature or 0.0),
        avg_logprob=float(piece.avg_logprob),
        compression_ratio=float(piece.compression_ratio),
        no_speech_prob=float(piece.no_speech_prob),
        words=words,
    )
