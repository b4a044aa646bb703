"""A request's images as the engines take them, read from shared memory.

The server has checked every image (a whole PNG, JPEG, WebP or GIF); here
they are decoded (a GIF's first frame), made RGB and scaled down, keeping
their aspect ratio, to at most ``max_image_pixels`` pixels, or 512x512 worth
for OpenAI's ``detail: "low"``.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import msgspec

from handlers.engine_protocol import EngineError
from ipc import shm
from ipc.messages import ChatMessage, ImagePart, TextPart

if TYPE_CHECKING:
    from PIL.Image import Image

LOW_DETAIL_PIXELS = 512 * 512


def image_parts(messages: list[ChatMessage]) -> list[ImagePart]:
    """Every image of the conversation, in order."""
    return [p for m in messages for p in m.parts or () if isinstance(p, ImagePart)]


def with_markers(messages: list[ChatMessage], marker: str) -> list[ChatMessage]:
    """``messages`` with each image replaced by ``marker`` in its text (for
    engines that find images by a marker in the rendered prompt)."""
    out = []
    for message in messages:
        if message.parts is None:
            out.append(message)
            continue
        text = "".join(p.text if isinstance(p, TextPart) else marker for p in message.parts)
        out.append(msgspec.structs.replace(message, content=text, parts=None))
    return out


def read_image(part: ImagePart, index: int) -> bytes:
    """The file bytes of ``part`` (image ``index`` of the request)."""
    try:
        return shm.read(part.image)
    except shm.ShmError as exc:
        raise EngineError(f"image {index} could not be read: {exc}", param="messages") from exc


def pixel_bound(part: ImagePart, max_pixels: int) -> int:
    """The most pixels ``part`` may keep."""
    return min(max_pixels, LOW_DETAIL_PIXELS) if part.detail == "low" else max_pixels


def image_size(data: bytes, index: int) -> tuple[int, int]:
    """(width, height) from the image's header, without decoding it."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with PILImage.open(io.BytesIO(data)) as opened:
            return opened.size
    except (UnidentifiedImageError, OSError, ValueError, PILImage.DecompressionBombError) as exc:
        raise EngineError(f"image {index} could not be decoded: {exc}", param="messages") from exc


def open_image(data: bytes, bound: int, index: int) -> Image:
    """The decoded RGB image, scaled down to at most ``bound`` pixels."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with PILImage.open(io.BytesIO(data)) as opened:
            opened.seek(0)  # a GIF's first frame
            image = opened.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, PILImage.DecompressionBombError) as exc:
        raise EngineError(f"image {index} could not be decoded: {exc}", param="messages") from exc
    return fit(image, bound)


def fit(image: Image, bound: int) -> Image:
    """``image`` scaled down to at most ``bound`` pixels (aspect kept)."""
    from PIL import Image as PILImage

    width, height = image.size
    if width * height <= bound:
        return image
    scale = math.sqrt(bound / (width * height))
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    return image.resize(size, PILImage.Resampling.BICUBIC)


def encoded_png(image: Image) -> bytes:
    """``image`` as PNG bytes."""
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()
