"""Image generation and editing on an image model: the request -> the
handler's ``GenerateImage``, its frames -> the answer or SSE events.

Uploads go to the handler through shared memory (the vision image pool);
finished images and previews come back through segments the handler owns,
each read and released at once. Both answers start the work before
returning, so early failures are HTTP statuses even for streams.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing

import pybase64

from bodega.errors import BodegaError, HandlerFailed, InvalidRequest, error_body
from bodega.openai import sse
from bodega.openai.images import (
    QUALITY_STEPS,
    CompletedEvent,
    ImageData,
    ImageOptions,
    ImagesResponse,
    ImagesUsage,
    InputTokensDetails,
    PartialImageEvent,
    ProgressEvent,
)
from bodega.registry.model import Model
from ipc.image_messages import GenerateImage, ImageProgress, ImageResult, ImagesDone
from ipc.messages import ShmRef

from .embeddings import read_payload
from .frames import first_frame

MAX_SEED = 2**32 - 1  # engines seed 32-bit generators: image i gets seed + i


def size_of(options: ImageOptions) -> tuple[int | None, int | None]:
    """(width, height) of ``size``; (None, None) for ``auto``."""
    if options.size == "auto":
        return None, None
    width, sep, height = options.size.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or "0" in (width[:1], height[:1]):
        raise InvalidRequest(
            f"size must be WIDTHxHEIGHT (e.g. 1024x1024) or auto, not {options.size!r}",
            param="size",
        )
    return int(width), int(height)


def image_request(
    options: ImageOptions,
    *,
    images: list[ShmRef] | None = None,
    mask: ShmRef | None = None,
    strength: float | None = None,
) -> GenerateImage:
    """The handler's ``GenerateImage`` for a generation or an edit, checked."""
    if options.response_format == "url":
        raise InvalidRequest(
            "response_format url is not supported: this server keeps no images to serve; "
            "use b64_json (the default)",
            param="response_format",
        )
    if options.background == "transparent" and options.output_format == "jpeg":
        raise InvalidRequest(
            "background transparent needs output_format png or webp (JPEG has no alpha)",
            param="background",
        )
    if options.partial_images and not options.stream:
        raise InvalidRequest("partial_images needs stream: true", param="partial_images")
    if (
        options.steps
        and options.num_inference_steps
        and options.steps != options.num_inference_steps
    ):
        raise InvalidRequest(
            "steps and num_inference_steps disagree; send one", param="num_inference_steps"
        )
    width, height = size_of(options)
    seed = options.seed if options.seed is not None else secrets.randbelow(MAX_SEED - 10)
    if seed + options.n - 1 > MAX_SEED:
        raise InvalidRequest(f"seed + n - 1 must be at most {MAX_SEED}", param="seed")
    return GenerateImage(
        req_id=0,
        prompt=options.prompt,
        negative_prompt=options.negative_prompt,
        n=options.n,
        width=width,
        height=height,
        steps=options.steps or options.num_inference_steps,
        steps_share=QUALITY_STEPS[options.quality],
        guidance_scale=options.guidance_scale,
        seed=seed,
        images=images or [],
        mask=mask,
        strength=strength,
        output_format=options.output_format,
        output_compression=options.output_compression,
        transparent=options.background == "transparent",
        partial_images=options.partial_images,
    )


def _usage(done: ImagesDone) -> ImagesUsage:
    tokens = done.prompt_tokens
    return ImagesUsage(
        input_tokens=tokens,
        input_tokens_details=InputTokensDetails(text_tokens=tokens),
        total_tokens=tokens,
    )


def _size(result: ImageResult) -> str:
    return f"{result.width}x{result.height}"


async def images_answer(
    model: Model, message: GenerateImage, options: ImageOptions
) -> ImagesResponse:
    """The whole answer: every image, base64 in ``b64_json``."""
    results: list[tuple[ImageResult, bytes]] = []
    async with aclosing(model.stream(message)) as frames:
        async for frame in frames:
            if isinstance(frame, ImageProgress):
                if frame.preview is not None:
                    await read_payload(model, frame.preview)
            elif isinstance(frame, ImageResult):
                results.append((frame, await read_payload(model, frame.image)))
            elif isinstance(frame, ImagesDone):
                return ImagesResponse(
                    created=int(time.time()),
                    data=[ImageData(b64_json=pybase64.b64encode(d).decode()) for _, d in results],
                    size=_size(results[0][0]) if results else options.size,
                    output_format=options.output_format,
                    quality=options.quality,
                    background="transparent" if message.transparent else "opaque",
                    usage=_usage(frame),
                )
    raise HandlerFailed("The model stopped answering before the images were finished.")


async def images_stream(
    model: Model, message: GenerateImage, options: ImageOptions, kind: str
) -> AsyncGenerator[bytes, None]:
    """OpenAI's streaming image events (``kind``: ``image_generation`` or
    ``image_edit``): a partial image per preview, a completed event per
    image; Bodega adds ``{kind}.progress`` per denoising step."""
    frames = model.stream(message)
    first = await first_frame(frames)
    background = "transparent" if message.transparent else "opaque"
    quality = options.quality

    completed: list[CompletedEvent] = []  # sent once the usage is known, at the end

    async def events() -> AsyncGenerator[bytes, None]:
        frame: object = first
        partial_index = 0
        try:
            async with aclosing(frames):
                while not isinstance(frame, ImagesDone):
                    now = int(time.time())
                    if isinstance(frame, ImageProgress):
                        yield _event(
                            ProgressEvent(
                                type=f"{kind}.progress",
                                created_at=now,
                                image_index=frame.index,
                                step=frame.step,
                                steps=frame.steps,
                            )
                        )
                        if frame.preview is not None:
                            data = await read_payload(model, frame.preview)
                            yield _event(
                                PartialImageEvent(
                                    type=f"{kind}.partial_image",
                                    b64_json=pybase64.b64encode(data).decode(),
                                    created_at=now,
                                    size=options.size,
                                    quality=quality,
                                    background=background,
                                    output_format=options.output_format,
                                    partial_image_index=partial_index,
                                    image_index=frame.index,
                                    step=frame.step,
                                    steps=frame.steps,
                                )
                            )
                            partial_index += 1
                    elif isinstance(frame, ImageResult):
                        data = await read_payload(model, frame.image)
                        completed.append(
                            CompletedEvent(
                                type=f"{kind}.completed",
                                b64_json=pybase64.b64encode(data).decode(),
                                created_at=now,
                                size=_size(frame),
                                quality=quality,
                                background=background,
                                output_format=options.output_format,
                                usage=_usage(ImagesDone(req_id=0, n=0)),
                                image_index=frame.index,
                            )
                        )
                    frame = await frames.__anext__()
                usage = _usage(frame)
                for event in completed:
                    event.usage = usage
                    yield _event(event)
        except BodegaError as exc:
            yield sse.event(error_body(exc))

    return events()


def _event(payload: PartialImageEvent | ProgressEvent | CompletedEvent) -> bytes:
    return b"event: " + payload.type.encode() + b"\n" + sse.event(payload)
