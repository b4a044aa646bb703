"""The mlx-vlm engine in process on the tiny Qwen2-VL: its prefill (image
embeddings, M-RoPE positions) then mlx-lm decoding gives the same greedy
tokens and log-probabilities as mlx-vlm's own ``stream_generate``; the
prompt cache and ``disable_auto_resize`` behave as documented."""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from catalog.options import LoadOptions
from ipc import shm
from ipc.messages import (
    ChatMessage,
    Finished,
    Generate,
    ImagePart,
    Sampling,
    TextPart,
    TokenLogprob,
)

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        importlib.util.find_spec("mlx_vlm") is None,
        reason="mlx-vlm is not installed: pip install 'bodega[mlx]'",
    ),
]


def image(color: str, size: tuple[int, int] = (80, 60)) -> Image.Image:
    return Image.new("RGB", size, color)


def png(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"))


@pytest.fixture(scope="module")
def owner() -> Iterator[shm.ShmOwner]:
    owner = shm.ShmOwner()
    yield owner
    owner.release_all()


def open_engine(folder: Path, **options: Any) -> Any:
    from handlers.vision.mlx_vlm_engine import MlxVlmEngine

    return MlxVlmEngine(
        LoadOptions(model_path=str(folder), model_type="multimodal", engine="mlx", **options)
    )


@pytest.fixture(scope="module")
def engine(folder: Path) -> Iterator[Any]:
    engine = open_engine(folder)
    yield engine
    engine.close()


def run(
    engine: Any, messages: list[ChatMessage], **fields: Any
) -> tuple[Finished, list[TokenLogprob]]:
    logprobs: list[TokenLogprob] = []

    def emit(text: str, n_tokens: int, **extra: Any) -> None:
        logprobs.extend(extra.get("logprobs") or [])

    request = Generate(
        req_id=1,
        messages=messages,
        sampling=Sampling(temperature=0.0),
        logprobs=True,
        **fields,
    )
    return engine.generate(request, emit, lambda: False), logprobs


def test_greedy_decoding_matches_mlx_vlm(engine: Any, folder: Path, owner: shm.ShmOwner) -> None:
    from mlx_vlm import load, stream_generate

    pictures = [image("red"), image("blue", (120, 90))]
    parts = [ImagePart(image=owner.create(png(p))) for p in pictures]
    message = ChatMessage(
        role="user",
        content="",
        parts=[parts[0], TextPart(text="then"), parts[1], TextPart(text="?")],
    )
    finished, ours = run(engine, [message], max_tokens=6)
    model, processor = load(str(folder))
    prompt = processor.apply_chat_template(
        [
            {
                "role": "user",
                "content": [
                    {"type": "image"},
                    {"type": "text", "text": "then"},
                    {"type": "image"},
                    {"type": "text", "text": "?"},
                ],
            }
        ],
        add_generation_prompt=True,
        tokenize=False,
    )
    theirs = [
        float(r.logprobs[r.token])
        for r in stream_generate(
            model, processor, prompt, image=pictures, max_tokens=6, temperature=0.0
        )
    ][:6]
    assert finished.usage.completion_tokens == 6
    assert [round(e.logprob, 3) for e in ours] == [round(x, 3) for x in theirs]


@pytest.mark.parametrize("slots", [1, 4])
def test_prompt_cache_hits_only_the_same_image(
    folder: Path, owner: shm.ShmOwner, slots: int
) -> None:
    """One at a time and in the batch alike."""
    red, blue = (ImagePart(image=owner.create(png(image(c)))) for c in ("red", "blue"))
    engine = open_engine(folder, max_concurrency=slots)

    def ask(part: ImagePart) -> list[ChatMessage]:
        return [ChatMessage(role="user", content="", parts=[TextPart(text="Cache?"), part])]

    try:
        first, _ = run(engine, ask(red), max_tokens=2)
        same, _ = run(engine, ask(red), max_tokens=2)
        other, _ = run(engine, ask(blue), max_tokens=2)
    finally:
        engine.close()
    prompt = first.usage.prompt_tokens
    assert same.usage.cached_tokens == prompt - 1
    assert other.usage.cached_tokens < prompt - 6


def test_disable_auto_resize_keeps_more_pixels(folder: Path, owner: shm.ShmOwner) -> None:
    big = ImagePart(image=owner.create(png(image("green", (448, 448)))))
    message = [ChatMessage(role="user", content="", parts=[big])]
    resized = open_engine(folder)
    try:
        auto, _ = run(resized, message, max_tokens=1)
    finally:
        resized.close()
    as_sent = open_engine(folder, disable_auto_resize=True, max_image_pixels=224 * 224)
    try:
        kept, _ = run(as_sent, message, max_tokens=1)
        low, _ = run(
            as_sent,
            [
                ChatMessage(
                    role="user", content="", parts=[ImagePart(image=big.image, detail="low")]
                )
            ],
            max_tokens=1,
        )
    finally:
        as_sent.close()
    # The processor's own bound is 112x112 (16 tokens); as sent, up to 224x224 (64 tokens).
    assert kept.usage.prompt_tokens - auto.usage.prompt_tokens == 64 - 16
    assert low.usage.prompt_tokens == kept.usage.prompt_tokens  # 512x512 bound is larger


def test_requests_decode_together_each_at_its_own_positions(
    engine: Any, folder: Path, owner: shm.ShmOwner
) -> None:
    """Four slots: prompts with different images (so different M-RoPE offsets)
    and a text-only one decode in one batch, each giving the greedy tokens and
    log-probabilities it gives alone on the one-at-a-time path."""
    import threading
    import time

    def ask(*parts: Any) -> list[ChatMessage]:
        return [ChatMessage(role="user", content="", parts=[TextPart(text="Which?"), *parts])]

    def picture(color: str, size: tuple[int, int]) -> ImagePart:
        return ImagePart(image=owner.create(png(image(color, size))))

    prompts = [
        ask(picture("red", (80, 60))),
        ask(picture("blue", (140, 112)), TextPart(text="and"), picture("white", (60, 90))),
        ask(TextPart(text="no image at all")),
    ]
    alone = [run(engine, messages, max_tokens=12)[1] for messages in prompts]
    batched = open_engine(folder, max_concurrency=4)
    together: list[list[TokenLogprob]] = [[] for _ in prompts]
    times: list[list[float]] = [[] for _ in prompts]

    def decode(i: int) -> None:
        def emit(text: str, n_tokens: int, **extra: Any) -> None:
            together[i].extend(extra.get("logprobs") or [])
            times[i].append(time.monotonic())

        request = Generate(
            req_id=10 + i,
            messages=prompts[i],
            sampling=Sampling(temperature=0.0),
            logprobs=True,
            max_tokens=12,
        )
        batched.generate(request, emit, lambda: False)

    try:
        threads = [threading.Thread(target=decode, args=(i,)) for i in range(len(prompts))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=240)
    finally:
        batched.close()
    for ours, theirs in zip(together, alone, strict=True):
        assert [e.token for e in ours] == [e.token for e in theirs]
        assert [e.logprob for e in ours] == pytest.approx([e.logprob for e in theirs], abs=2e-3)
    # Decoded together: every stream had its first token before any had its last.
    assert max(t[0] for t in times) < min(t[-1] for t in times)
