"""Image classification on a multimodal model (the inference-service vision API).

The image and the prompt go to the model as one user message; the answer's
first word is the ``classification`` and the whole answer the
``raw_response``. ``confidence`` is the probability the model gave its answer:
exp of the sum of its tokens' log-probabilities, as the engine reports them
(null if it reports none; never made up).
"""

from __future__ import annotations

import binascii
import math
import time
from pathlib import Path

import pybase64
import trio

from bodega.errors import BodegaError, InvalidRequest
from bodega.openai.vision import (
    BatchClassifyRequest,
    BatchClassifyResponse,
    BatchItem,
    ClassifyOptions,
    ClassifyUsage,
    ImageClassifyResponse,
)
from bodega.registry.model import Model
from ipc.messages import ChatMessage, Generate, Sampling, TextPart

from ..text import run_choices
from .image_bytes import checked_image, data_url_image, too_large
from .images import RequestImages


def image_from_path(path: str, root: str | None, *, max_bytes: int, param: str) -> bytes:
    """The image file at ``path``, which must lie under ``root`` (``vision.image_root``):
    no ``..``, no symlink out of it."""
    if root is None:
        raise InvalidRequest(
            "image_path is refused: the server reads no files unless vision.image_root "
            "is set; send image_base64 instead.",
            param=param,
        )
    base = Path(root).resolve()
    candidate = Path(path)
    if ".." in candidate.parts:
        raise InvalidRequest("image_path may not contain '..'.", param=param)
    candidate = candidate if candidate.is_absolute() else base / candidate
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        raise InvalidRequest(f"image_path {path!r} does not exist.", param=param) from None
    if not resolved.is_relative_to(base):
        raise InvalidRequest(
            f"image_path {path!r} is outside vision.image_root (directly or through a link).",
            param=param,
        )
    if not resolved.is_file():
        raise InvalidRequest(f"image_path {path!r} is not a file.", param=param)
    if resolved.stat().st_size > max_bytes:
        raise too_large(max_bytes, param)
    data = resolved.read_bytes()
    checked_image(data, param=param)
    return data


def image_from_base64(text: str, *, max_bytes: int, param: str) -> bytes:
    """The image in ``text``: plain base64 or a base64 ``data:`` URL."""
    if text.startswith("data:"):
        return data_url_image(text, max_bytes=max_bytes, param=param)
    if len(text) > (max_bytes * 4) // 3 + 4:
        raise too_large(max_bytes, param)
    try:
        data = pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("image_base64 is not valid base64.", param=param) from None
    checked_image(data, param=param)
    return data


def classification_of(answer: str) -> str:
    """The answer's first word, lower case, without punctuation."""
    words = answer.strip().split()
    return words[0].strip(".,:;!?\"'`*()[]").lower() if words else ""


async def classify(model: Model, image: bytes, options: ClassifyOptions) -> ImageClassifyResponse:
    """Classify one image on ``model``."""
    images = RequestImages()
    try:
        images.add((0, 0), image, "low" if options.resize_image else "high")
        part = images.parts[(0, 0)]
        message = Generate(
            req_id=0,
            messages=[
                ChatMessage(
                    role="user", content=options.prompt, parts=[part, TextPart(options.prompt)]
                )
            ],
            max_tokens=options.max_tokens,
            sampling=Sampling(temperature=options.temperature),
            logprobs=True,
        )
        [(assembled, finished)] = await run_choices(model, message, 1)
    finally:
        images.release()
    raw = "".join(assembled.text)
    logprobs = [entry.logprob for entry in assembled.logprobs]
    usage = finished.usage
    return ImageClassifyResponse(
        classification=classification_of(raw),
        raw_response=raw,
        confidence=math.exp(sum(logprobs)) if logprobs else None,
        model_id=model.id,
        usage=ClassifyUsage(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.prompt_tokens + usage.completion_tokens,
        ),
    )


async def classify_batch(
    model: Model, request: BatchClassifyRequest, root: str | None, max_bytes: int
) -> BatchClassifyResponse:
    """Classify every image of ``request``; a bad image fails alone."""
    sources: list[tuple[str, str, str]] = [
        (path, "path", f"image_paths[{i}]") for i, path in enumerate(request.image_paths)
    ] + [(text, "base64", f"images_base64[{i}]") for i, text in enumerate(request.images_base64)]
    if not sources:
        raise InvalidRequest("Send image_paths or images_base64.", param="image_paths")
    results: list[BatchItem] = [BatchItem(image_path=None) for _ in sources]
    started = time.perf_counter()

    async def one(index: int, value: str, kind: str, param: str) -> None:
        item = results[index]
        item.image_index = index
        item.image_path = value if kind == "path" else None
        try:
            if kind == "path":
                data = image_from_path(value, root, max_bytes=max_bytes, param=param)
            else:
                data = image_from_base64(value, max_bytes=max_bytes, param=param)
            answer = await classify(model, data, request)
        except BodegaError as exc:
            item.error = f"{param}: {exc.message}"
            return
        item.classification = answer.classification
        item.raw_response = answer.raw_response
        item.confidence = answer.confidence

    async with trio.open_nursery() as nursery:
        for index, (value, kind, param) in enumerate(sources):
            nursery.start_soon(one, index, value, kind, param)
    elapsed = time.perf_counter() - started
    failed = sum(1 for r in results if r.error is not None)
    return BatchClassifyResponse(
        results=results,
        total_images=len(results),
        successful=len(results) - failed,
        failed=failed,
        model_id=model.id,
        processing_time_seconds=round(elapsed, 4),
        images_per_second=round(len(results) / elapsed, 4) if elapsed > 0 else 0.0,
    )
