"""Image bytes in requests: data URLs and the check that they are images."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from bodega.errors import InvalidRequest, PayloadTooLarge
from bodega.services.vision.image_bytes import checked_image, data_url_image

PARAM = "messages[0].content[1].image_url.url"


def image_bytes(fmt: str, size: tuple[int, int] = (8, 6)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_each_supported_format_is_accepted(fmt: str) -> None:
    data = image_bytes(fmt)
    assert data_url_image(data_url(data), max_bytes=10_000, param=PARAM) == data
    assert checked_image(data, param=PARAM) == fmt


def test_the_bytes_decide_the_format_not_the_mime_type() -> None:
    jpeg = image_bytes("JPEG")
    assert data_url_image(data_url(jpeg, "image/png"), max_bytes=10_000, param=PARAM) == jpeg


def test_not_an_image_names_the_part() -> None:
    with pytest.raises(InvalidRequest, match="not a whole, readable") as caught:
        data_url_image(data_url(b"hello, world"), max_bytes=10_000, param=PARAM)
    assert caught.value.param == PARAM


def test_a_truncated_image_is_refused() -> None:
    png = image_bytes("PNG", (64, 64))
    with pytest.raises(InvalidRequest, match="not a whole, readable"):
        checked_image(png[: len(png) // 2], param=PARAM)


def test_truncated_base64_is_refused() -> None:
    url = data_url(image_bytes("PNG"))
    with pytest.raises(InvalidRequest, match="malformed or truncated"):
        data_url_image(url[:-3], max_bytes=10_000, param=PARAM)


def test_unsupported_formats_and_shapes_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="this one is BMP"):
        data_url_image(data_url(image_bytes("BMP")), max_bytes=10_000, param=PARAM)
    with pytest.raises(InvalidRequest, match="base64"):
        data_url_image("data:image/png,rawbytes", max_bytes=10_000, param=PARAM)
    with pytest.raises(InvalidRequest, match="data:image/png;base64"):
        data_url_image("data:image/png;base64", max_bytes=10_000, param=PARAM)


def test_an_image_over_the_cap_is_413() -> None:
    png = image_bytes("PNG", (300, 300))
    with pytest.raises(PayloadTooLarge) as caught:
        data_url_image(data_url(png), max_bytes=len(png) - 1, param=PARAM)
    assert caught.value.status == 413
    assert caught.value.param == PARAM
