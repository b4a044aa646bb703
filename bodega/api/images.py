"""``POST /v1/images/generations`` (JSON) and ``POST /v1/images/edits``
(multipart: ``image`` one or more times, optional ``mask``, the other fields
as text), OpenAI's shapes; ``stream: true`` answers Server-Sent Events."""

from __future__ import annotations

import msgspec
from quart import Blueprint, Response, request
from werkzeug.datastructures import FileStorage

from bodega.errors import (
    InvalidRequest,
    NoModelLoaded,
    PayloadTooLarge,
    UnsupportedMediaType,
    from_validation_error,
)
from bodega.openai.images import ImageEditOptions, ImageGenerationRequest, ImageOptions
from bodega.registry.model import Model
from bodega.services.images import image_request, images_answer, images_stream
from bodega.services.vision.image_bytes import checked_image, too_large
from bodega.services.vision.images import RequestImages
from ipc.image_messages import GenerateImage

from .common import decode_json, json_response, registry, settings, sse_response

blueprint = Blueprint("images", __name__)

IMAGE_MODELS = ("image-generation", "image-edit")
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP")
FORM_OVERHEAD = 64 * 1024


async def _model(name: str | None) -> Model:
    """The image model a request names (default: the first one serving)."""
    if name:
        return await registry().find(name, kinds=IMAGE_MODELS)
    for model in registry().models:
        if model.spec.model_type in IMAGE_MODELS:
            return registry().resolve(model.id, kinds=IMAGE_MODELS)
    raise NoModelLoaded(
        "No image model is loaded: load one with model_type image-generation or image-edit."
    )


async def _answer(
    model: Model, message: GenerateImage, options: ImageOptions, kind: str, uploads: RequestImages
) -> Response:
    try:
        if not options.stream:
            answer = await images_answer(model, message, options)
            uploads.release()
            return json_response(answer)
        events = await images_stream(model, message, options, kind)
    except BaseException:
        uploads.release()
        raise
    return sse_response(uploads.released_after(events))


@blueprint.post("/v1/images/generations")
async def generations() -> Response:
    """Make images from a prompt."""
    options = await decode_json(ImageGenerationRequest)
    message = image_request(options)
    model = await _model(options.model)
    return await _answer(model, message, options, "image_generation", RequestImages())


@blueprint.post("/v1/images/edits")
async def edits() -> Response:
    """Edit uploaded images (image to image; inpainting with a mask)."""
    max_bytes = settings().server.max_image_bytes
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType(
            f"expected a multipart/form-data body with image files, not "
            f"{request.mimetype or 'nothing'!r}"
        )
    if (
        request.content_length is not None
        and request.content_length > 16 * max_bytes + FORM_OVERHEAD
    ):
        raise too_large(16 * max_bytes, "image")
    form = await request.form
    files = await request.files
    fields: dict[str, object] = {}
    for name in form:
        values = form.getlist(name)
        if len(values) > 1:
            raise InvalidRequest(f"{name} was given {len(values)} times", param=name)
        fields[name] = values[0]
    for name in ("image", "image[]", "mask"):
        if name in form:
            raise InvalidRequest(f"{name} must be an uploaded file, not a text field", param=name)
    unknown = sorted(set(files) - {"image", "image[]", "mask"})
    if unknown:
        raise InvalidRequest(f"Unknown file field {unknown[0]}", param=unknown[0])
    try:
        options = msgspec.convert(fields, ImageEditOptions, strict=False)
    except msgspec.ValidationError as exc:
        raise from_validation_error(exc) from None
    images = files.getlist("image") + files.getlist("image[]")
    if not images:
        raise InvalidRequest("image is required: upload the image to edit as a file", param="image")
    uploads = RequestImages()  # by (0, upload index)
    try:
        refs = [uploads.add((0, i), _upload(f, "image", max_bytes)) for i, f in enumerate(images)]
        masks = files.getlist("mask")
        if len(masks) > 1:
            raise InvalidRequest("send one mask", param="mask")
        mask = uploads.add((0, len(refs)), _upload(masks[0], "mask", max_bytes)) if masks else None
        message = image_request(options, images=refs, mask=mask, strength=options.strength)
        model = await _model(options.model)
    except BaseException:
        uploads.release()
        raise
    return await _answer(model, message, options, "image_edit", uploads)


def _upload(upload: FileStorage, param: str, max_bytes: int) -> bytes:
    """An uploaded image's bytes, checked to be a PNG, JPEG or WebP image."""
    data = upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"The image is larger than the {max_bytes} bytes allowed.", param=param
        )
    found = checked_image(data, param=param)
    if found not in UPLOAD_FORMATS:
        raise InvalidRequest(f"{param} must be a PNG, JPEG or WebP image, not {found}", param=param)
    if param == "mask" and not _has_alpha(data):
        raise InvalidRequest(
            "the mask must be a PNG with an alpha channel (transparent where the image is edited)",
            param="mask",
        )
    return data


def _has_alpha(data: bytes) -> bool:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.format == "PNG" and (
            image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        )
