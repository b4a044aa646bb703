"""Image bytes from a request: data URLs decoded and every image checked by
Pillow (the bytes decide the format, never the MIME type a client claims)."""

from __future__ import annotations

import binascii
import io

import pybase64

from bodega.errors import InvalidRequest, PayloadTooLarge

FORMATS = ("PNG", "JPEG", "WEBP", "GIF")  # GIF: its first frame


def too_large(max_bytes: int, param: str) -> PayloadTooLarge:
    """The 413 for an image over ``max_bytes``."""
    return PayloadTooLarge(f"The image is larger than the {max_bytes} bytes allowed.", param=param)


def checked_image(data: bytes, *, param: str) -> str:
    """The format of ``data`` (one of ``FORMATS``); InvalidRequest naming
    ``param`` when it is not a whole image of one of them."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            found = image.format
            image.verify()  # structure and checksums, without decoding pixels
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidRequest(
            f"The data is not a whole, readable PNG, JPEG, WebP or GIF image; it may be "
            f"truncated ({exc}).",
            param=param,
        ) from None
    if found not in FORMATS:
        raise InvalidRequest(
            f"Images must be PNG, JPEG, WebP or GIF; this one is {found}.", param=param
        )
    return str(found)


def data_url_image(url: str, *, max_bytes: int, param: str) -> bytes:
    """The image inside a ``data:`` URL (base64), checked; 413 over ``max_bytes``."""
    header, comma, payload = url.partition(",")
    if not comma or not header.startswith("data:"):
        raise InvalidRequest("A data URL needs the form data:image/png;base64,...", param=param)
    if not header.endswith(";base64"):
        raise InvalidRequest("Only base64 data URLs are supported (…;base64,…).", param=param)
    if len(payload) > (max_bytes * 4) // 3 + 4:
        raise too_large(max_bytes, param)
    try:
        data = pybase64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(
            "The data URL's base64 is malformed or truncated.", param=param
        ) from None
    if len(data) > max_bytes:
        raise too_large(max_bytes, param)
    checked_image(data, param=param)
    return data
