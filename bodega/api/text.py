"""``POST /v1/chat/completions`` and ``POST /v1/completions``: decode, call
the text service, encode JSON or SSE."""

from __future__ import annotations

from typing import cast

from quart import Blueprint, Response, current_app
from quart_trio import QuartTrio

from bodega.cache.cache import response_cache
from bodega.catalog_presets.models import routed_model
from bodega.openai.requests import ChatCompletionRequest, CompletionRequest
from bodega.orchestration import service as orchestration
from bodega.registry.registry import TEXT_MODELS
from bodega.services import text
from bodega.services.chat import chat_message
from bodega.services.completions import completion_request
from bodega.services.sampling import with_defaults

from .common import decode_json, fetch_policy, json_response, registry, settings, sse_response

blueprint = Blueprint("text", __name__)


@blueprint.post("/v1/chat/completions")
async def chat_completions() -> Response:
    """OpenAI chat completions, JSON or SSE."""
    body = await decode_json(ChatCompletionRequest)
    name = routed_model(body.model, body.task_type)
    model = await registry().find(name, kinds=TEXT_MODELS, keep_alive=body.keep_alive)
    roles = settings().orchestration
    mode = orchestration.mode_of(body, roles)
    if mode is not None:  # several runs: never from the response cache
        run = await orchestration.prepare(body, model, registry(), roles, mode)
        if body.stream:
            return sse_response(orchestration.stream(run, cast(QuartTrio, current_app).nursery))
        return json_response(await orchestration.answer(run))
    message, images = await chat_message(body, model, fetch_policy())
    try:
        logprobs = bool(body.logprobs)
        cached = await response_cache().lookup(model, message, body.n)
        if not body.stream:
            answer = await text.chat_answer(cached.model, message, body.n, logprobs=logprobs)
            images.release()
            return cached.mark(json_response(answer))
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = await text.chat_stream(
            cached.model, message, body.n, logprobs=logprobs, include_usage=include_usage
        )
    except BaseException:
        images.release()
        raise
    return cached.mark(sse_response(images.released_after(events) if images.parts else events))


@blueprint.post("/v1/completions")
async def completions() -> Response:
    """OpenAI legacy prompt completions, JSON or SSE."""
    body = await decode_json(CompletionRequest)
    message = completion_request(body)
    model = await registry().find(body.model, kinds=TEXT_MODELS, keep_alive=body.keep_alive)
    message = with_defaults(message, body, model.spec.defaults)
    cached = await response_cache().lookup(model, message, body.n)
    if not body.stream:
        answer = await text.completion_answer(cached.model, message, body.n, logprobs=body.logprobs)
        return cached.mark(json_response(answer))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    events = await text.completion_stream(
        cached.model, message, body.n, logprobs=body.logprobs, include_usage=include_usage
    )
    return cached.mark(sse_response(events))
