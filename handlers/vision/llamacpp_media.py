"""Images for llama.cpp's multimodal projector (mtmd).

llama.cpp finds each image by a marker in the prompt text and takes the
images, in the same order, base64-encoded beside it: ``{"prompt_string":
..., "multimodal_data": [...]}``. Its decoder (stb_image) reads PNG, JPEG and
GIF; anything else, and any image that had to be scaled down, goes as PNG.
Its prompt cache tells images apart by a hash of their pixels, so a
different image never reuses another's cached tokens.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import msgspec
import pybase64

from catalog.files import find_mmproj
from catalog.options import LoadOptions
from handlers.engine_protocol import EngineError, LoadError
from ipc.messages import Generate, ImagePart

from .images import (
    encoded_png,
    image_parts,
    image_size,
    open_image,
    pixel_bound,
    read_image,
    with_markers,
)

# Read by llama.cpp once, at its first server: set before any is made.
MARKER = os.environ.setdefault("LLAMA_MEDIA_MARKER", f"<__media_{secrets.token_hex(16)}__>")
PASS_THROUGH_TEMPLATE = "{{ messages[0]['content'] }}"
_PASSED_AS_IS = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8")


def projector_path(spec: LoadOptions) -> Path:
    """The projector of a multimodal GGUF model: ``mmproj_path``, else the
    ``mmproj*.gguf`` beside the model."""
    if spec.mmproj_path is not None:
        path = Path(spec.mmproj_path)
        if not path.is_file():
            raise LoadError(f"mmproj_path {spec.mmproj_path!r} does not exist")
        return path
    found = find_mmproj(spec.model_path)
    if found is None:
        raise LoadError(
            f"no multimodal projector for {spec.model_path}: pass mmproj_path, or put the "
            "model's mmproj*.gguf beside it"
        )
    return found


def request_media(request: Generate, spec: LoadOptions) -> tuple[Generate, list[str]]:
    """The request with a marker where each image was, and its images for
    llama.cpp, checked against the model."""
    parts = image_parts(request.messages or [])
    if not parts:
        return request, []
    if spec.model_type != "multimodal":
        raise EngineError("this model is not multimodal: it takes no images", param="messages")
    if request.min_tokens:
        # Its continuation past min_tokens is a token prompt, which cannot carry images.
        raise EngineError(
            "min_tokens is not supported with images on llama.cpp", param="min_tokens"
        )
    marked = msgspec.structs.replace(request, messages=with_markers(request.messages or [], MARKER))
    return marked, media_data(parts, spec.max_image_pixels)


def media_data(parts: list[ImagePart], max_pixels: int) -> list[str]:
    """The base64 images of ``parts`` as llama.cpp takes them."""
    out = []
    for index, part in enumerate(parts):
        data = read_image(part, index)
        bound = pixel_bound(part, max_pixels)
        width, height = image_size(data, index)
        if not (data.startswith(_PASSED_AS_IS) and width * height <= bound):
            data = encoded_png(open_image(data, bound, index))
        out.append(pybase64.b64encode(data).decode())
    return out


def chat_body(body: dict[str, Any], prompt: str, media: list[str]) -> dict[str, Any]:
    """The chat-route request for a completions ``body`` whose ``prompt``
    (with markers) goes with ``media``."""
    out = {k: v for k, v in body.items() if k not in ("prompt", "logprobs")}
    if "logprobs" in body:
        out.update(logprobs=True, top_logprobs=body["logprobs"])
    images = [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}
        for data in media
    ]
    out["messages"] = [{"role": "user", "content": prompt}, {"role": "user", "content": images}]
    return out
