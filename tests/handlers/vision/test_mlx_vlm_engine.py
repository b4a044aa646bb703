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


def test_prompt_cache_hits_only_the_same_image(engine: Any, owner: shm.ShmOwner) -> None:
    red, blue = (ImagePart(image=owner.create(png(image(c)))) for c in ("red", "blue"))

    def ask(part: ImagePart) -> list[ChatMessage]:
        return [ChatMessage(role="user", content="", parts=[TextPart(text="Cache?"), part])]

    first, _ = run(engine, ask(red), max_tokens=2)
    same, _ = run(engine, ask(red), max_tokens=2)
    other, _ = run(engine, ask(blue), max_tokens=2)
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
