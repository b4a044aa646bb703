"""handlers.vision.images and llamacpp_media: images read from shared
memory, decoded, bounded, and handed to llama.cpp in a form it decodes."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import pytest
from PIL import Image

from catalog.options import LoadOptions
from handlers.engine_protocol import EngineError
from handlers.vision.images import fit, image_parts, open_image, pixel_bound, with_markers
from handlers.vision.llamacpp_media import MARKER, chat_body, media_data, request_media
from ipc import shm
from ipc.messages import ChatMessage, Generate, ImagePart, TextPart


def encoded(picture: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    picture.save(out, format=fmt, **options)
    return out.getvalue()


@pytest.fixture
def owner() -> Iterator[shm.ShmOwner]:
    owner = shm.ShmOwner()
    yield owner
    owner.release_all()


def test_fit_keeps_the_aspect_and_never_enlarges() -> None:
    wide = Image.new("RGB", (4000, 1000))
    scaled = fit(wide, 1_000_000)
    assert scaled.size[0] * scaled.size[1] <= 1_000_000
    assert abs(scaled.size[0] / scaled.size[1] - 4.0) < 0.01
    small = Image.new("RGB", (10, 10))
    assert fit(small, 1_000_000) is small


def test_low_detail_bounds_to_512_square() -> None:
    part = ImagePart(image=shm.ShmRef(name="x", size=1), detail="low")
    assert pixel_bound(part, 4096 * 4096) == 512 * 512
    assert pixel_bound(ImagePart(image=part.image), 4096 * 4096) == 4096 * 4096


def test_a_gif_gives_its_first_frame_in_rgb() -> None:
    frames = [Image.new("P", (8, 8), i) for i in (1, 2)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    decoded = open_image(gif.getvalue(), 10_000, 0)
    assert decoded.mode == "RGB" and decoded.size == (8, 8)


def test_undecodable_bytes_are_an_engine_error() -> None:
    with pytest.raises(EngineError, match="image 3 could not be decoded"):
        open_image(b"not an image", 10_000, 3)


def test_markers_replace_images_in_order() -> None:
    ref = shm.ShmRef(name="x", size=1)
    messages = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(
            role="user",
            content="AB",
            parts=[TextPart("A"), ImagePart(image=ref), TextPart("B"), ImagePart(image=ref)],
        ),
    ]
    marked = with_markers(messages, "<m>")
    assert marked[0] is messages[0]
    assert marked[1].content == "A<m>B<m>" and marked[1].parts is None
    assert len(image_parts(messages)) == 2 and image_parts(marked) == []


def test_llamacpp_gets_png_and_jpeg_as_sent_and_the_rest_as_png(owner: shm.ShmOwner) -> None:
    picture = Image.new("RGB", (40, 30), "red")
    sent = {fmt: encoded(picture, fmt) for fmt in ("PNG", "JPEG", "WEBP")}
    parts = [ImagePart(image=owner.create(data)) for data in sent.values()]
    png, jpeg, webp = (base64.b64decode(d) for d in media_data(parts, 4096 * 4096))
    assert png == sent["PNG"] and jpeg == sent["JPEG"]
    assert webp.startswith(b"\x89PNG")
    big = ImagePart(image=owner.create(sent["PNG"]))
    (scaled,) = media_data([big], 600)
    width, height = Image.open(io.BytesIO(base64.b64decode(scaled))).size
    assert width * height <= 600 and width > height


def test_request_media_checks_the_model_and_marks_the_prompt(owner: shm.ShmOwner) -> None:
    part = ImagePart(image=owner.create(encoded(Image.new("RGB", (4, 4)), "PNG")))
    message = ChatMessage(role="user", content="x", parts=[TextPart("look: "), part])
    request = Generate(req_id=1, messages=[message])
    text_model = LoadOptions(model_path="m.gguf")
    with pytest.raises(EngineError, match="not multimodal"):
        request_media(request, text_model)
    vision = LoadOptions(model_path="m.gguf", model_type="multimodal")
    marked, media = request_media(request, vision)
    assert marked.messages is not None and marked.messages[0].content == f"look: {MARKER}"
    assert len(media) == 1
    with pytest.raises(EngineError) as refused:
        request_media(Generate(req_id=1, messages=[message], min_tokens=2), vision)
    assert refused.value.param == "min_tokens"
    plain = Generate(req_id=1, messages=[ChatMessage(role="user", content="hi")])
    assert request_media(plain, text_model) == (plain, [])


def test_chat_body_moves_the_prompt_and_logprobs() -> None:
    body = chat_body({"prompt": "p", "logprobs": 3, "stream": True}, f"a{MARKER}", ["AAAA"])
    assert "prompt" not in body and body["logprobs"] is True and body["top_logprobs"] == 3
    first, second = body["messages"]
    assert first == {"role": "user", "content": f"a{MARKER}"}
    assert second["content"][0]["image_url"]["url"] == "data:image/png;base64,AAAA"
    assert MARKER.startswith("<__media_") and len(MARKER) > 30  # unguessable
