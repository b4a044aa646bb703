"""Whisper on mlx-whisper: the fast path on Apple Silicon.

``model_path`` is an mlx-whisper folder, or a faster-whisper (CTranslate2)
folder converted once and cached (handlers/convert_whisper.py). MLX arrays
belong to the thread that made them, so one worker thread loads the model
and runs every request.

mlx-whisper's ``transcribe`` returns only when the whole file is done, so
this engine runs its own window loop on mlx-whisper's pieces (mel
spectrogram, ``decode``, word timing): the same seek logic as
``mlx_whisper.transcribe`` (timestamp-token segments, temperature fallback,
no-speech skip, previous text as prompt), yielding each window's segments as
soon as they are decoded. mlx-whisper has no beam search: decoding is greedy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from catalog.files import is_ct2_whisper, is_mlx_whisper
from catalog.options import LoadOptions
from handlers.convert.whisper_to_mlx import ConversionError, cached_conversion
from handlers.engine_protocol import LoadError, ShouldStop
from handlers.lm.mlx_loading import conversion_cache_root, mlx_memory
from handlers.whisper.audio_decode import Samples
from handlers.whisper.common import Cancelled, Options, WhisperEngine
from ipc.messages import EngineMemory, Segment, Word

COMPRESSION_RATIO_THRESHOLD = 2.4
LOGPROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6


def resolve_folder(model_path: str) -> Path:
    """An mlx-whisper folder for ``model_path`` (converting a CT2 folder if needed)."""
    folder = Path(model_path)
    if is_mlx_whisper(folder):
        return folder
    if is_ct2_whisper(folder):
        try:
            return cached_conversion(folder, conversion_cache_root())
        except (ConversionError, OSError) as exc:
            raise LoadError(f"cannot convert {folder} to MLX: {exc}") from exc
    raise LoadError(
        f"{model_path!r} is neither an mlx-whisper folder (config.json, weights.safetensors) "
        "nor a faster-whisper folder (model.bin, config.json)"
    )


class MlxWhisperEngine(WhisperEngine):
    """A Whisper model on MLX, driven by one worker thread."""

    name = "mlx"

    def __init__(self, spec: LoadOptions) -> None:
        self.model_id = spec.id
        self.parallel = 1
        folder = resolve_folder(spec.model_path)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlx-whisper")
        self._model: Any = self._worker.submit(self._load, folder).result()
        self.multilingual = bool(self._model.is_multilingual)

    def _load(self, folder: Path) -> Any:
        import mlx.core as mx
        from mlx.utils import tree_map
        from mlx_whisper.load_models import load_model

        self._mx = mx
        cuda = getattr(mx, "cuda", None)
        gpu = mx.metal.is_available() or (cuda is not None and cuda.is_available())
        # float16 on a GPU; MLX's CPU backend runs float32 far faster.
        self._dtype = mx.float16 if gpu else mx.float32
        try:
            model = load_model(str(folder), dtype=self._dtype)
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise LoadError(f"mlx-whisper could not load {folder}: {exc}") from exc
        model.update(tree_map(lambda w: w.astype(self._dtype), model.parameters()))
        extras = folder / "bodega_whisper.json"
        heads = json.loads(extras.read_text()).get("alignment_heads") if extras.is_file() else None
        if heads:
            model.set_alignment_heads(np.asarray(heads, dtype=np.int64))
        mx.eval(model.parameters())
        return model

    def memory(self) -> EngineMemory:
        """MLX's active, cache and peak memory."""
        return mlx_memory()

    def segments(
        self, audio: Samples, options: Options, should_stop: ShouldStop
    ) -> tuple[str, Iterator[Segment]]:
        """Detect the language if needed, then decode lazily on the worker thread."""
        language = options.language or self._worker.submit(self._detect, audio).result()
        windows = _Windows(self, audio, options, language, should_stop)

        def run() -> Iterator[Segment]:
            while True:
                batch = self._worker.submit(windows.next_window).result()
                if batch is None:
                    return
                yield from batch

        return language, run()

    def _detect(self, audio: Samples) -> str:
        from mlx_whisper.audio import N_FRAMES, log_mel_spectrogram, pad_or_trim

        mel = log_mel_spectrogram(audio, n_mels=self._model.dims.n_mels)
        mel = pad_or_trim(mel, N_FRAMES, axis=-2).astype(self._dtype)
        _, probs = self._model.detect_language(mel)
        return str(max(probs, key=probs.get))


class _Windows:
    """One request's window loop; every method runs on the engine's MLX thread."""

    def __init__(
        self,
        engine: MlxWhisperEngine,
        audio: Samples,
        options: Options,
        language: str,
        should_stop: ShouldStop,
    ) -> None:
        self._engine = engine
        self._should_stop = should_stop
        self._audio = audio
        self._options = options
        self._language = language
        self._mel: Any = None
        self._seek = 0
        self._tokens: list[int] = []
        self._prompt_reset_since = 0
        self._last_speech = 0.0
        self._single_ending = False

    def _start(self) -> None:
        from mlx_whisper.audio import N_FRAMES, N_SAMPLES, log_mel_spectrogram
        from mlx_whisper.tokenizer import get_tokenizer

        model = self._engine._model
        # Padded with 30 s of silence, so that every window can be sliced whole.
        self._mel = log_mel_spectrogram(self._audio, n_mels=model.dims.n_mels, padding=N_SAMPLES)
        self._content_frames = self._mel.shape[-2] - N_FRAMES
        self._tokenizer = get_tokenizer(
            model.is_multilingual,
            num_languages=model.num_languages,
            language=self._language,
            task=self._options.task,
        )
        if self._options.prompt:
            self._tokens = self._tokenizer.encode(" " + self._options.prompt.strip())
        self._initial = len(self._tokens)

    def _decode(self, mel_segment: Any) -> Any:
        from mlx_whisper.decoding import DecodingOptions

        engine, result = self._engine, None
        for t in self._options.temperatures:
            if self._should_stop():
                raise Cancelled
            options = DecodingOptions(
                task=self._options.task,
                language=self._language,
                temperature=t,
                prompt=self._tokens[self._prompt_reset_since :],
                fp16=engine._dtype == engine._mx.float16,
            )
            result = engine._model.decode(mel_segment, options)
            failed = (
                result.compression_ratio > COMPRESSION_RATIO_THRESHOLD
                or result.avg_logprob < LOGPROB_THRESHOLD
            )
            if result.no_speech_prob > NO_SPEECH_THRESHOLD or not failed:
                break
        return result

    def next_window(self) -> list[Segment] | None:
        """Decode the next 30-second window; None once the audio is done."""
        from mlx_whisper.audio import (
            FRAMES_PER_SECOND,
            HOP_LENGTH,
            N_FRAMES,
            SAMPLE_RATE,
            pad_or_trim,
        )

        if self._mel is None:
            self._start()
        model, tokenizer = self._engine._model, self._tokenizer
        while self._seek < self._content_frames:
            seek = self._seek
            time_offset = seek * HOP_LENGTH / SAMPLE_RATE
            size = min(N_FRAMES, self._content_frames - seek)
            mel_segment = pad_or_trim(self._mel[seek : seek + size], N_FRAMES, axis=-2)
            mel_segment = mel_segment.astype(self._engine._dtype)
            result = self._decode(mel_segment)
            tokens = np.array(result.tokens)
            if (
                result.no_speech_prob > NO_SPEECH_THRESHOLD
                and result.avg_logprob <= LOGPROB_THRESHOLD
            ):
                self._seek += size  # silence: on to the next window
                continue
            segments = self._split(tokens, seek, size)
            if self._options.word_timestamps and segments:
                from mlx_whisper.timing import add_word_timestamps

                add_word_timestamps(
                    segments=segments,
                    model=model,
                    tokenizer=tokenizer,
                    mel=mel_segment,
                    num_frames=size,
                    last_speech_timestamp=self._last_speech,
                )
                ends = [w["end"] for s in segments for w in s.get("words", [])]
                if ends:
                    self._last_speech = ends[-1]
                    if not self._single_ending and ends[-1] > time_offset:
                        self._seek = round(ends[-1] * FRAMES_PER_SECOND)
            kept = [s for s in segments if s["text"].strip() and s["end"] > s["start"]]
            self._tokens.extend(t for s in kept for t in s["tokens"])
            if result.temperature > 0.5:  # do not feed text decoded at a high temperature
                self._prompt_reset_since = len(self._tokens)
            if kept:
                return [_segment(s, seek, result) for s in kept]
        return None

    def _split(self, tokens: Any, seek: int, size: int) -> list[dict[str, Any]]:
        """Cut the tokens of the window at ``seek`` at timestamp pairs; advance the seek."""
        from mlx_whisper.audio import HOP_LENGTH, N_FRAMES, SAMPLE_RATE

        tokenizer = self._tokenizer
        stride = N_FRAMES // self._engine._model.dims.n_audio_ctx
        precision = stride * HOP_LENGTH / SAMPLE_RATE  # seconds per timestamp step
        time_offset = seek * HOP_LENGTH / SAMPLE_RATE
        begin = tokenizer.timestamp_begin
        is_time = tokens >= begin
        self._single_ending = is_time[-2:].tolist() == [False, True]
        consecutive = (np.where(np.logical_and(is_time[:-1], is_time[1:]))[0] + 1).tolist()

        def piece(start: float, end: float, part: Any) -> dict[str, Any]:
            ids = [int(t) for t in part.tolist()]
            text_ids = [t for t in ids if t < tokenizer.eot]
            text = tokenizer.decode(text_ids)
            return {"seek": seek, "start": start, "end": end, "tokens": ids, "text": text}

        segments = []
        if consecutive:
            if self._single_ending:
                consecutive.append(len(tokens))
            last = 0
            for cut in consecutive:
                part = tokens[last:cut]
                start = time_offset + (int(part[0]) - begin) * precision
                end = time_offset + (int(part[-1]) - begin) * precision
                segments.append(piece(start, end, part))
                last = cut
            if self._single_ending:
                self._seek += size
            else:
                self._seek += (int(tokens[last - 1]) - begin) * stride
        else:
            duration = size * HOP_LENGTH / SAMPLE_RATE
            stamps = tokens[is_time]
            if len(stamps) > 0 and int(stamps[-1]) != begin:
                duration = (int(stamps[-1]) - begin) * precision
            segments.append(piece(time_offset, time_offset + duration, tokens))
            self._seek += size
        return segments


def _segment(piece: dict[str, Any], seek: int, result: Any) -> Segment:
    words = [
        Word(
            word=w["word"],
            start=float(w["start"]),
            end=float(w["end"]),
            probability=float(w.get("probability", 0.0)),
        )
        for w in piece.get("words", [])
    ]
    return Segment(
        req_id=0,
        id=0,
        start=round(float(piece["start"]), 3),
        end=round(float(piece["end"]), 3),
        text=piece["text"],
        seek=seek,
        tokens=piece["tokens"],
        temperature=float(result.temperature),
        avg_logprob=float(result.avg_logprob),
        compression_ratio=float(result.compression_ratio),
        no_speech_prob=float(result.no_speech_prob),
        words=words,
    )
