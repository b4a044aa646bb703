"""Model discovery: list, retrieve, download (with progress) and delete models."""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio
from quart import Blueprint, Response, current_app, request

from bodega.catalog_presets.models import annotate_cards
from bodega.errors import InvalidRequest, ModelNotFound
from bodega.hub.cache import CachedModel, delete_cached, find_cached
from bodega.hub.download import DownloadJob
from bodega.hub.errors import ModelInUse
from bodega.hub.plan import Selection
from bodega.openai.hub import DeletedModel, DownloadAnswer, DownloadRequest, ModelCards
from bodega.openai.sse import DONE, event
from bodega.registry.tiers import tier_alias, tiers_of
from bodega.services.model_list import cached_card, loaded_card, model_cards, users_of
from catalog.files import looks_like_repo_id

from .common import decode_json, json_response, registry, sse_response

blueprint = Blueprint("hub", __name__)

# The progress stream sends at most this many events a second.
EVENTS_PER_SECOND = 4


@blueprint.get("/v1/models")
async def list_models() -> Response:
    """Loaded models and the Hugging Face cache, in OpenAI's list shape."""
    verify = _flag("verify_with_hub")
    cards = await model_cards(registry(), verify_with_hub=verify)
    catalog = current_app.extensions.get("bodega.catalog")
    cards = await annotate_cards(cards, catalog, registry())
    for card in cards:
        card.tiers = tiers_of(card.id, registry().tiers) or None
    return json_response(ModelCards(data=cards))


@blueprint.get("/v1/models/<path:model_id>")
async def retrieve_model(model_id: str) -> Response:
    """One loaded model or cached repo (OpenAI's retrieve shape plus ours)."""
    cached = await _cached(model_id)
    if cached is not None:
        same = [m for m in users_of(registry(), cached) if m.id == cached.repo_id]
        return json_response(cached_card(cached, same))
    model_id = tier_alias(model_id, registry().tiers) or model_id
    for model in registry().models:
        if model.id == model_id:
            card = loaded_card(model)
            card.tiers = tiers_of(model.id, registry().tiers) or None
            return json_response(card)
    raise ModelNotFound(f"The model {model_id!r} is neither loaded nor in the cache.")


@blueprint.delete("/v1/models/<path:model_id>")
async def delete_model(model_id: str) -> Response:
    """Remove a repo (every revision) from the Hugging Face cache."""
    cached = await _cached(model_id)
    if cached is None:
        if any(m.id == model_id for m in registry().models):
            raise ModelInUse(
                f"{model_id!r} is a loaded model, not a cached repo; unload it with "
                f"DELETE /v1/admin/unload-model/{model_id}"
            )
        raise ModelNotFound(f"The model {model_id!r} is not in the Hugging Face cache.")
    users = users_of(registry(), cached)
    if users:
        names = ", ".join(repr(m.id) for m in users)
        raise ModelInUse(
            f"{model_id!r} is loaded as {names}; unload it before deleting its files", param=None
        )
    if registry().downloads.active(model_id):
        raise ModelInUse(f"{model_id!r} is being downloaded; delete it once the download ends")
    await trio.to_thread.run_sync(delete_cached, model_id)
    return json_response(DeletedModel(id=model_id))


@blueprint.post("/v1/admin/download-model")
async def download_model() -> Response:
    """Download a repo into the cache; answers once it is complete."""
    job = await _start_download()
    path = await job.wait()
    plan = job.plan
    assert plan is not None
    return json_response(
        DownloadAnswer(
            model_path=plan.repo_id,
            revision=plan.commit,
            local_path=str(path),
            files=sorted(plan.files),
            size_bytes=plan.total_bytes,
            downloaded_files=len(plan.files),
            elapsed_s=round(job.elapsed, 3),
        )
    )


@blueprint.post("/v1/admin/download-model-stream")
async def download_model_stream() -> Response:
    """Download a repo, streaming progress events, ``completed`` or ``error``
    last, then ``[DONE]``. A client that leaves does not stop the download."""
    job = await _start_download()
    return sse_response(_progress_events(job))


async def _start_download() -> DownloadJob:
    """Start (or join) the download a request asks for; errors found before
    any byte moves (unknown repo, no access, no disk space) are raised here."""
    body = await decode_json(DownloadRequest)
    if not looks_like_repo_id(body.model_path):
        raise InvalidRequest(
            f"model_path must be a Hugging Face repo id (owner/name), not {body.model_path!r}",
            param="model_path",
        )
    selection = Selection(
        revision=body.revision,
        allow_patterns=tuple(body.allow_patterns) if body.allow_patterns else None,
        ignore_patterns=tuple(body.ignore_patterns) if body.ignore_patterns else None,
        filename=body.filename,
        quant=body.quant,
    )
    job = registry().downloads.start(body.model_path, selection)
    while job.progress.status == "starting":
        await job.changed()
    if job.failure is not None and job.progress.downloaded_bytes == 0:
        raise job.failure
    return job


async def _progress_events(job: DownloadJob) -> AsyncIterator[bytes]:
    """The job's progress, at most EVENTS_PER_SECOND, the final state last."""
    while True:
        final = job.done.is_set()
        yield event(job.progress)
        if final:
            break
        await trio.sleep(1 / EVENTS_PER_SECOND)
        if not job.done.is_set():
            await job.changed()
    yield DONE


async def _cached(model_id: str) -> CachedModel | None:
    """The cached repo ``model_id`` names, or None (also for ids that are no repo id)."""
    if not looks_like_repo_id(model_id):
        return None
    return await trio.to_thread.run_sync(find_cached, model_id)


def _flag(name: str) -> bool:
    """A boolean query parameter: true/false, 1/0, yes/no."""
    value = request.args.get(name, "false").lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no", ""):
        return False
    raise InvalidRequest(f"{name} must be true or false, not {value!r}", param=name)
