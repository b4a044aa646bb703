"""Image generation and editing frames (part of ``ipc.messages``' unions).

Images travel in shared memory both ways: the server puts the uploads
(``images``, ``mask``) in segments it owns; the handler puts each finished
image, encoded in ``output_format``, in a segment the server reads and then
answers with ``ReleaseShm``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ipc.shm_ref import ShmRef


class GenerateImage(msgspec.Struct, tag="generate_image", kw_only=True):
    """Make ``n`` images of ``prompt``; with ``images``, edit them (image to
    image, or inpainting where ``mask`` is transparent). None: the model's
    default. Image ``i`` is seeded ``seed + i``."""

    req_id: int
    prompt: str
    negative_prompt: str | None = None
    n: int = 1
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    # The share of the model's default steps (``quality``), when ``steps`` is None.
    steps_share: float = 1.0
    guidance_scale: float | None = None
    seed: int = 0
    images: list[ShmRef] = []
    mask: ShmRef | None = None
    strength: float | None = None
    output_format: Literal["png", "jpeg", "webp"] = "png"
    output_compression: int | None = None
    transparent: bool = False
    # Send a preview image this many times over the denoising (0: none);
    # step progress is sent either way.
    partial_images: int = 0
    # The HTTP request's X-Request-ID, for the handler's log lines.
    request_id: str = ""


class ImageProgress(msgspec.Struct, tag="image_progress", omit_defaults=True):
    """A denoising step of image ``index`` finished; ``preview`` is an
    encoded partial image (a ``ShmRef`` to release) when one was asked for."""

    req_id: int
    index: int
    step: int
    steps: int
    preview: ShmRef | None = None


class ImageResult(msgspec.Struct, tag="image_result"):
    """One finished image, encoded, in shared memory (release it once read)."""

    req_id: int
    index: int
    image: ShmRef
    width: int
    height: int
    seed: int


class ImagesDone(msgspec.Struct, tag="images_done"):
    """The last frame of a ``GenerateImage``: its ``ImageResult`` frames came
    before. ``prompt_tokens``: the prompt as the text encoder counted it."""

    req_id: int
    n: int
    prompt_tokens: int = 0
