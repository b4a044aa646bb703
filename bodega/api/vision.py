"""The inference-service vision API, ``/api/v1/vision/*``, served by the
multimodal models (model_type ``multimodal``)."""

from __future__ import annotations

from quart import Blueprint, Response, request

from bodega.errors import InvalidRequest, NoModelLoaded
from bodega.openai.vision import (
    BatchClassifyRequest,
    ImageClassifyRequest,
    VisionHealthResponse,
    VisionLoadRequest,
    VisionLoadResponse,
)
from bodega.registry.model import Model
from bodega.registry.registry import SERVING
from bodega.services.vision.classify import (
    classify,
    classify_batch,
    image_from_base64,
    image_from_path,
)

from .common import decode_json, json_response, registry, settings

blueprint = Blueprint("vision", __name__)

MULTIMODAL = ("multimodal",)


def _multimodal() -> list[Model]:
    return [m for m in registry().models if m.spec.model_type == "multimodal"]


async def _model(name: str | None) -> Model:
    """The multimodal model a request names, or the first one serving."""
    if name is not None:
        return await registry().find(name, kinds=MULTIMODAL)
    serving = [m for m in _multimodal() if m.status in SERVING]
    if not serving:
        raise NoModelLoaded(
            "No multimodal model is loaded: load one with POST /api/v1/vision/load "
            "or POST /v1/admin/load-model (model_type multimodal)."
        )
    return serving[0]


@blueprint.get("/api/v1/vision/health")
async def vision_health() -> Response:
    """Whether a multimodal model is serving."""
    models = _multimodal()
    serving = [m.id for m in models if m.status in SERVING]
    answer = VisionHealthResponse(
        status="healthy" if serving else "unavailable",
        model_loaded=bool(serving),
        model_id=serving[0] if serving else None,
        models=[m.id for m in models],
    )
    return json_response(answer, status=200 if serving else 503)


@blueprint.post("/api/v1/vision/classify")
async def vision_classify() -> Response:
    """Classify one image (``image_path`` under ``vision.image_root``, or ``image_base64``)."""
    body = await decode_json(ImageClassifyRequest)
    max_bytes = settings().server.max_image_bytes
    if (body.image_path is None) == (body.image_base64 is None):
        raise InvalidRequest("Send exactly one of image_path and image_base64.", param="image_path")
    model = await _model(body.model)
    if body.image_path is not None:
        root = settings().vision.image_root
        data = image_from_path(body.image_path, root, max_bytes=max_bytes, param="image_path")
    else:
        assert body.image_base64 is not None
        data = image_from_base64(body.image_base64, max_bytes=max_bytes, param="image_base64")
    return json_response(await classify(model, data, body))


@blueprint.post("/api/v1/vision/classify/batch")
async def vision_classify_batch() -> Response:
    """Classify several images; each bad one fails alone."""
    body = await decode_json(BatchClassifyRequest)
    model = await _model(body.model)
    config = settings()
    answer = await classify_batch(
        model, body, config.vision.image_root, config.server.max_image_bytes
    )
    return json_response(answer)


async def _load_request() -> VisionLoadRequest:
    if not await request.get_data(cache=True):
        return VisionLoadRequest()
    return await decode_json(VisionLoadRequest)


@blueprint.post("/api/v1/vision/load")
async def vision_load() -> Response:
    """Load a multimodal model of the configuration (default: the first)."""
    body = await _load_request()
    configured = [s for s in settings().models if s.model_type == "multimodal"]
    if body.model is not None:
        configured = [s for s in configured if s.id == body.model]
    if not configured:
        named = f" named {body.model!r}" if body.model else ""
        raise InvalidRequest(
            f"The configuration has no multimodal model{named} to load; "
            "POST /v1/admin/load-model loads any model.",
            param="model",
        )
    spec = configured[0]
    if any(m.id == spec.id for m in registry().models):
        return json_response(VisionLoadResponse(status="already_loaded", model_id=spec.id))
    model = await registry().load(spec)
    return json_response(VisionLoadResponse(status="loaded", model_id=model.id))


@blueprint.post("/api/v1/vision/unload")
async def vision_unload() -> Response:
    """Unload one multimodal model (``model``), or every one."""
    body = await _load_request()
    if body.model is not None:
        model = registry().get(body.model)
        if model.spec.model_type != "multimodal":
            raise InvalidRequest(f"The model {body.model!r} is not multimodal.", param="model")
        ids = [body.model]
    else:
        ids = [m.id for m in _multimodal()]
    for model_id in ids:
        await registry().unload(model_id)
    return json_response(VisionLoadResponse(status="unloaded" if ids else "not_loaded"))
