"""Wire types of the inference-service vision API (``/api/v1/vision/*``).

Field names and shapes follow the inference-service docs (section 2.4);
``model`` is Bodega's addition (default: the first multimodal model loaded).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

DEFAULT_PROMPT = (
    "Is this image technical content (a diagram, a chart, code, or a screenshot of a "
    "document or an application) or something else? Answer with one word: "
    "technical or discard."
)


class ClassifyOptions(msgspec.Struct, kw_only=True):
    """What every classification request may set."""

    model: str | None = None
    prompt: Annotated[str, Meta(min_length=1)] = DEFAULT_PROMPT
    max_tokens: Annotated[int, Meta(ge=1, le=4096)] = 16
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] = 0.0
    # True: scaled down to 512x512 worth of pixels first (faster); False: full size.
    resize_image: bool = True


class ImageClassifyRequest(ClassifyOptions, kw_only=True):
    """``POST /api/v1/vision/classify``: one of ``image_path`` | ``image_base64``."""

    image_path: str | None = None
    image_base64: str | None = None


class BatchClassifyRequest(ClassifyOptions, kw_only=True):
    """``POST /api/v1/vision/classify/batch``: paths and/or base64 images."""

    image_paths: Annotated[list[str], Meta(max_length=256)] = []
    images_base64: Annotated[list[str], Meta(max_length=256)] = []


class ClassifyUsage(msgspec.Struct):
    """Token counts of one classification."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ImageClassifyResponse(msgspec.Struct):
    """One classification. ``confidence``: the probability the model gave
    its whole answer (the product of its tokens' probabilities)."""

    classification: str
    raw_response: str
    confidence: float | None
    model_id: str
    usage: ClassifyUsage


class BatchItem(msgspec.Struct):
    """One image of a batch; ``error`` set when it alone failed."""

    image_path: str | None
    classification: str | None = None
    raw_response: str | None = None
    confidence: float | None = None
    error: str | None = None
    image_index: int = 0


class BatchClassifyResponse(msgspec.Struct):
    """``POST /api/v1/vision/classify/batch``."""

    results: list[BatchItem]
    total_images: int
    successful: int
    failed: int
    model_id: str
    processing_time_seconds: float
    images_per_second: float


class VisionHealthResponse(msgspec.Struct):
    """``GET /api/v1/vision/health``."""

    status: str  # "healthy" | "unavailable"
    model_loaded: bool
    model_id: str | None
    models: list[str]


class VisionLoadRequest(msgspec.Struct, kw_only=True):
    """``POST /api/v1/vision/load`` and ``/unload``: which multimodal model
    (default: the first in the configuration's models, or every one loaded)."""

    model: str | None = None


class VisionLoadResponse(msgspec.Struct):
    """``{status, model_id}``."""

    status: str
    model_id: str | None = None
