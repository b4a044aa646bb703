"""One tiny request through a freshly loaded model before it is reported
``running``, so the first user request is not the slow one (kernels built,
caches allocated, lazy imports done). Image models are not warmed: one
denoising pass at a real size is what their first request costs anyway."""

from __future__ import annotations

import io
import random
import struct
import time
import wave

from bodega.errors import ModelLoadFailed
from ipc.audio_messages import Transcribe
from ipc.messages import (
    TERMINAL_TYPES,
    ChatMessage,
    Embed,
    Failed,
    Generate,
    Rerank,
    Sampling,
    WorkMessage,
)

from .handler import HandlerProcess

SAMPLE_RATE = 16_000


def hiss_wav(seconds: float = 0.5) -> bytes:
    """Quiet noise as 16-bit mono WAV: loud enough not to count as silence
    (which skips the model), too quiet to be heard as speech, so Whisper runs
    its encoder once and stops at once (a tone makes it hallucinate for seconds)."""
    noise = random.Random(0)
    frames = b"".join(
        struct.pack("<h", int(noise.uniform(-300, 300))) for _ in range(int(SAMPLE_RATE * seconds))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(frames)
    return out.getvalue()


def warmup_message(model_type: str) -> WorkMessage | None:
    """The request that warms a model of ``model_type``; None for image models."""
    if model_type in ("lm", "multimodal"):
        return Generate(
            req_id=0,
            messages=[ChatMessage(role="user", content="Hi")],
            max_tokens=1,
            sampling=Sampling(temperature=0.0),
        )
    if model_type == "embeddings":
        return Embed(req_id=0, texts=["warm up"])
    if model_type == "rerank":
        return Rerank(req_id=0, query="warm up", documents=["warm up"])
    if model_type == "whisper":
        return Transcribe(req_id=0, audio=hiss_wav(), filename="warmup.wav", temperature=0.0)
    return None


async def warm_up(handler: HandlerProcess, model_type: str) -> float | None:
    """Seconds the warm-up request took (None when the type has none); a
    failure is a load error naming it."""
    message = warmup_message(model_type)
    if message is None:
        return None
    started = time.perf_counter()
    async with handler.request(message) as frames:
        async for frame in frames:
            if isinstance(frame, Failed):
                raise ModelLoadFailed(
                    f"model {handler.spec.id!r} loaded but its warm-up request failed: "
                    f"{frame.message}"
                )
            if isinstance(frame, TERMINAL_TYPES):
                break
    return time.perf_counter() - started
