"""OpenAI's Responses API (``/v1/responses``) on the chat service."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from quart import Blueprint, Response, current_app, request

from bodega.cache.cache import marked, response_cache
from bodega.errors import InvalidRequest
from bodega.responses.service import ResponsesService
from bodega.responses.store import ResponseStore
from bodega.responses.types import CreateResponse, DeletedResponse
from bodega.settings import default_data_dir

from .common import decode_json, fetch_policy, json_response, registry, settings, sse_response
from .tools import toolbox

blueprint = Blueprint("responses", __name__)


def service() -> ResponsesService:
    """The app's Responses service, its store opened on first use."""
    found = current_app.extensions.get("bodega.responses")
    if found is None:
        config = settings()
        path = Path(config.server.data_dir or default_data_dir()) / "responses.sqlite3"
        store = ResponseStore(path, config.responses)
        found = ResponsesService(store, registry(), toolbox(), fetch_policy(), response_cache())
        current_app.extensions["bodega.responses"] = found
    return cast(ResponsesService, found)


@blueprint.post("/v1/responses")
async def create_response() -> Response:
    """Create a response: JSON, SSE events, or queued in the background."""
    body = await decode_json(CreateResponse)
    responses = service()
    prepared = await responses.prepare(body)
    if body.background:
        return json_response(await responses.background(prepared, current_app.add_background_task))
    if body.stream:
        events = await responses.stream(prepared)
        return marked(sse_response(events), prepared.cache_outcome)
    return marked(json_response(await responses.answer(prepared)), prepared.cache_outcome)


@blueprint.get("/v1/responses/<response_id>")
async def retrieve_response(response_id: str) -> Response:
    """A stored response (resuming a background stream is not offered)."""
    if request.args.get("stream", "false").lower() == "true":
        raise InvalidRequest(
            "a stored response cannot be streamed again; retrieve it without stream",
            param="stream",
        )
    return json_response((await service().store.get(response_id)).response)


@blueprint.delete("/v1/responses/<response_id>")
async def delete_response(response_id: str) -> Response:
    """Forget a stored response."""
    await service().store.delete(response_id)
    return json_response(DeletedResponse(id=response_id))


@blueprint.post("/v1/responses/<response_id>/cancel")
async def cancel_response(response_id: str) -> Response:
    """Stop a background response."""
    return json_response(await service().cancel(response_id))


@blueprint.get("/v1/responses/<response_id>/input_items")
async def list_input_items(response_id: str) -> Response:
    """The conversation items that went into a stored response, a page at a time."""
    args = request.args
    try:
        limit = int(args.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise InvalidRequest("limit is a whole number from 1 to 100", param="limit")
    order = args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order is asc or desc", param="order")
    page = await service().input_items(
        response_id, limit=limit, newest_first=order == "desc", after=args.get("after")
    )
    return json_response(page)
