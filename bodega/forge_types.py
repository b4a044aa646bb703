"""The ForgeLLM model server's wire types (``/api/model/*``, ``api/forge.py``)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from bodega.openai.requests import PositiveInt, Probability, Temperature


class ForgeLoadRequest(msgspec.Struct, kw_only=True):
    """``POST /api/model/load``: a model path or Hugging Face repo id, and an
    optional LoRA adapter folder."""

    model_name: Annotated[str, Meta(min_length=1)]
    adapter_path: str | None = None


class ForgeGenerateRequest(msgspec.Struct, kw_only=True):
    """``POST /api/model/generate``: the prompt is one user turn, rendered with
    the model's chat template. Unset ``max_tokens``: up to the context's end."""

    prompt: Annotated[str, Meta(min_length=1)]
    max_tokens: PositiveInt | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None
    min_p: Probability | None = None
    repetition_penalty: Annotated[float, Meta(gt=0.0)] | None = None
    seed: int | None = None
    stop: str | list[str] | None = None


class ForgeStatus(msgspec.Struct, kw_only=True):
    """``GET /api/model/status``: the model this API loaded last."""

    success: bool = True
    loaded: bool
    is_loading: bool
    model_name: str | None
    adapter_path: str | None
    error: str | None = None


class ForgeLoadAnswer(msgspec.Struct, kw_only=True):
    """``POST /api/model/load``: the load has started; poll the status."""

    success: bool = True
    message: str
    model_name: str
    adapter_path: str | None


class ForgeGenerateAnswer(msgspec.Struct, kw_only=True):
    """``POST /api/model/generate``: the text and the seconds it took."""

    success: bool = True
    text: str
    generation_time: float


class ForgeError(msgspec.Struct, kw_only=True):
    """Every error of these routes."""

    success: bool = False
    error: str
