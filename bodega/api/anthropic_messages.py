"""Anthropic's ``POST /v1/messages`` and ``/v1/messages/count_tokens`` on the chat service."""

from __future__ import annotations

from quart import Blueprint, Response

from bodega.anthropic import service
from bodega.anthropic.requests import CountTokensRequest, MessagesRequest
from bodega.cache.cache import response_cache
from bodega.registry.registry import TEXT_MODELS

from .common import decode_json, fetch_policy, json_response, registry, sse_response

blueprint = Blueprint("anthropic_messages", __name__)


@blueprint.post("/v1/messages")
async def messages() -> Response:
    """Anthropic Messages, JSON or SSE (deterministic ones from the response cache)."""
    body = await decode_json(MessagesRequest)
    model = await registry().find(body.model, kinds=TEXT_MODELS)
    if body.stream:
        events, cached = await service.stream(body, model, fetch_policy(), response_cache())
        return cached.mark(sse_response(events))
    answer, cached = await service.create(body, model, fetch_policy(), response_cache())
    return cached.mark(json_response(answer))


@blueprint.post("/v1/messages/count_tokens")
async def count_tokens() -> Response:
    """The prompt's tokens with the model's chat template and tokenizer."""
    body = await decode_json(CountTokensRequest)
    model = await registry().find(body.model, kinds=TEXT_MODELS)
    return json_response(await service.count_tokens(body, model, fetch_policy()))
