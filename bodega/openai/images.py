"""Wire types of ``/v1/images/generations`` and ``/v1/images/edits``.

OpenAI's shapes, plus the Bodega docs' extras (``steps``, ``guidance_scale``,
``seed``, ``negative_prompt``). ``b64_json`` is the only response format: the
server keeps no images to serve back by URL.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Steps = Annotated[int, Meta(ge=1, le=200)]
OutputFormat = Literal["png", "jpeg", "webp"]
Quality = Literal["low", "medium", "high", "auto", "standard", "hd"]
Background = Literal["transparent", "opaque", "auto"]

# quality -> the share of the model's default steps it runs (documented in the README).
QUALITY_STEPS = {"low": 0.5, "medium": 0.75, "high": 1.0, "auto": 1.0, "standard": 1.0, "hd": 1.0}


class ImageOptions(msgspec.Struct, kw_only=True):
    """What generations and edits share."""

    model: str | None = None
    prompt: Annotated[str, Meta(min_length=1, max_length=32000)]
    n: Annotated[int, Meta(ge=1, le=10)] = 1
    size: str = "auto"
    seed: Annotated[int, Meta(ge=0, le=2**63 - 1)] | None = None
    steps: Steps | None = None
    num_inference_steps: Steps | None = None
    guidance_scale: Annotated[float, Meta(ge=0.0, le=50.0)] | None = None
    negative_prompt: str | None = None
    quality: Quality = "auto"
    output_format: OutputFormat = "png"
    output_compression: Annotated[int, Meta(ge=0, le=100)] | None = None
    background: Background = "auto"
    response_format: Literal["b64_json", "url"] = "b64_json"
    user: str | None = None
    stream: bool = False
    partial_images: Annotated[int, Meta(ge=0, le=3)] = 0
    # OpenAI-only switches with no effect here (see the README).
    moderation: Literal["auto", "low"] | None = None
    style: Literal["vivid", "natural"] | None = None


class ImageGenerationRequest(ImageOptions, kw_only=True):
    """``POST /v1/images/generations``."""


class ImageEditOptions(ImageOptions, kw_only=True):
    """``POST /v1/images/edits`` (multipart form fields besides the files)."""

    strength: Annotated[float, Meta(gt=0.0, le=1.0)] | None = None
    input_fidelity: Literal["high", "low"] | None = None


class InputTokensDetails(msgspec.Struct):
    """``usage.input_tokens_details``."""

    text_tokens: int
    image_tokens: int = 0


class ImagesUsage(msgspec.Struct):
    """Token usage: the prompt's tokens as the text encoder counted them;
    diffusion models produce no output tokens."""

    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int = 0
    total_tokens: int = 0


class ImageData(msgspec.Struct, omit_defaults=True):
    """One image of the answer."""

    b64_json: str
    revised_prompt: str | None = None


class ImagesResponse(msgspec.Struct, omit_defaults=True):
    """The answer of a generation or an edit."""

    created: int
    data: list[ImageData]
    size: str
    output_format: OutputFormat
    quality: str
    background: str | None = None
    usage: ImagesUsage | None = None


class ImageEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What OpenAI's streamed image events share."""

    type: str
    b64_json: str
    created_at: int
    size: str
    quality: str
    background: str
    output_format: OutputFormat


class PartialImageEvent(ImageEvent, kw_only=True):
    """``image_generation.partial_image`` / ``image_edit.partial_image``."""

    partial_image_index: int
    # Bodega's additions: which image of ``n``, and the denoising step shown.
    image_index: int = 0
    step: int = 0
    steps: int = 0


class ProgressEvent(msgspec.Struct):
    """``image_generation.progress`` (Bodega's): a denoising step finished."""

    type: str
    created_at: int
    image_index: int
    step: int
    steps: int


class CompletedEvent(ImageEvent, kw_only=True):
    """``image_generation.completed`` / ``image_edit.completed``."""

    usage: ImagesUsage
    image_index: int = 0
