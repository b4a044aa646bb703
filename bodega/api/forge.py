"""The ForgeLLM model server's API: ``/api/model/status``, ``load``, ``generate``.

ForgeLLM serves one model at a time; here "the model" is the one this API
loaded last (a model it loaded before is unloaded when another is loaded), or,
before any load, the first language model the registry serves. Loads go
through the registry as ``/v1/admin/load-model`` with ``"wait": false`` does,
so the model shows in ``/v1/admin/loaded-models``. ``generate`` runs the
prompt as one user turn of a chat completion. Every error is
``{"success": false, "error": ...}`` with the status of the underlying error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from quart import Blueprint, Response, current_app
from werkzeug.exceptions import HTTPException

from bodega.errors import BodegaError, InvalidRequest
from bodega.forge_types import (
    ForgeError,
    ForgeGenerateAnswer,
    ForgeGenerateRequest,
    ForgeLoadAnswer,
    ForgeLoadRequest,
    ForgeStatus,
)
from bodega.openai.requests import ChatCompletionRequest, ChatMessageIn
from bodega.registry.model import Model
from bodega.registry.registry import TEXT_MODELS
from bodega.services import text
from bodega.services.chat import chat_request
from bodega.services.sampling import with_defaults
from bodega.settings import ModelSpec

from .common import decode_json, json_response, registry

blueprint = Blueprint("forge", __name__)

LOADING = ("downloading", "loading")


@dataclass
class ForgeState:
    """What this API loaded last (None: nothing yet)."""

    model_id: str | None = None
    adapter_path: str | None = None


def _state() -> ForgeState:
    state = current_app.extensions.get("bodega.forge")
    if state is None:
        state = current_app.extensions["bodega.forge"] = ForgeState()
    return state


def _current() -> tuple[Model | None, str | None]:
    """The model this API speaks of, and its adapter."""
    state = _state()
    models = {m.id: m for m in registry().models}
    if state.model_id is not None:
        return models.get(state.model_id), state.adapter_path
    for model in models.values():
        if model.spec.model_type in TEXT_MODELS:
            paths = model.spec.lora_paths
            return model, paths[0] if paths else None
    return None, None


@blueprint.errorhandler(BodegaError)
async def on_error(exc: BodegaError) -> Response:
    """The ForgeLLM envelope, with the error's status."""
    response = json_response(ForgeError(error=exc.message), status=exc.status)
    response.headers.update(exc.headers())
    return response


@blueprint.errorhandler(HTTPException)
async def on_http_error(exc: HTTPException) -> Response:
    """Quart's own errors (body too large …) in the envelope."""
    return json_response(ForgeError(error=exc.description or exc.name), status=exc.code or 500)


@blueprint.get("/api/model/status")
async def status() -> Response:
    """Whether the model is loaded or loading, and why it failed."""
    model, adapter = _current()
    if model is None:
        return json_response(
            ForgeStatus(loaded=False, is_loading=False, model_name=None, adapter_path=None)
        )
    state = model.state()
    return json_response(
        ForgeStatus(
            loaded=state.status == "running",
            is_loading=state.status in LOADING,
            model_name=model.id,
            adapter_path=adapter,
            error=state.error if state.status in ("failed", "stopped") else None,
        )
    )


@blueprint.post("/api/model/load")
async def load() -> Response:
    """Start loading ``model_name`` (with ``adapter_path`` as its LoRA) and
    answer at once; the status says when it is loaded."""
    body = await decode_json(ForgeLoadRequest)
    name, adapter = body.model_name, body.adapter_path
    lora = [adapter] if adapter else None
    state, reg = _state(), registry()
    models = {m.id: m for m in reg.models}
    existing = models.get(name)
    if existing is not None and existing.spec.lora_paths != lora:
        if state.model_id != name:
            raise InvalidRequest(
                f"The model {name!r} is already loaded with other options; unload it first."
            )
        await reg.unload(name)
        existing = None
    if existing is None:
        if state.model_id is not None and state.model_id != name and state.model_id in models:
            await reg.unload(state.model_id)  # ForgeLLM serves one model at a time
        try:
            await reg.load(ModelSpec(model_path=name, lora_paths=lora), wait=False)
        except InvalidRequest as exc:
            if exc.param is not None and exc.param.startswith("lora_paths"):
                raise InvalidRequest(f"adapter_path: {exc.message}") from None
            raise
    state.model_id, state.adapter_path = name, adapter
    return json_response(
        ForgeLoadAnswer(
            message=f"Model {name} loading started", model_name=name, adapter_path=adapter
        )
    )


@blueprint.post("/api/model/generate")
async def generate() -> Response:
    """The model's answer to ``prompt`` (one user turn) and the seconds it took."""
    body = await decode_json(ForgeGenerateRequest)
    model, _ = _current()
    if model is None:
        raise InvalidRequest("No model loaded")
    status = model.status
    if status in LOADING:
        raise InvalidRequest(f"The model {model.id} is still loading")
    if status != "running":
        raise InvalidRequest(f"No model loaded ({model.id} is {status})")
    chat = ChatCompletionRequest(
        model=model.id,
        messages=[ChatMessageIn(role="user", content=body.prompt)],
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        min_p=body.min_p,
        repetition_penalty=body.repetition_penalty,
        seed=body.seed,
        stop=body.stop,
    )
    started = time.perf_counter()
    message = with_defaults(chat_request(chat), chat, model.spec.defaults)
    answer = await text.chat_answer(model, message, 1, logprobs=False)
    seconds = time.perf_counter() - started
    content = answer.choices[0].message.content
    return json_response(ForgeGenerateAnswer(text=content or "", generation_time=round(seconds, 3)))
