"""``POST /v1/models/{model_id}/load`` and ``/unload``: catalog models by id
(the inventory's ModelActionResponse). A model loaded here is an ordinary
registry model: it shows in loaded-models and unloads like any other."""

from __future__ import annotations

import msgspec
from quart import Blueprint, Response, current_app

from bodega.api.common import json_response, registry
from bodega.catalog_presets.config import Catalog, CatalogEntry
from bodega.catalog_presets.models import entry_spec
from bodega.errors import ModelNotFound

blueprint = Blueprint("catalog_presets", __name__)


class ModelActionResponse(msgspec.Struct):
    """What a load or unload did (the inventory's shape)."""

    id: str
    status: str
    message: str


def _entry(model_id: str) -> CatalogEntry:
    catalog: Catalog | None = current_app.extensions.get("bodega.catalog")
    entry = catalog.entries.get(model_id) if catalog is not None else None
    if entry is None:
        raise ModelNotFound(f"The model {model_id!r} is not in the catalog.", param="model_id")
    return entry


@blueprint.post("/v1/models/<path:model_id>/load")
async def load(model_id: str) -> Response:
    """Load a catalog model and answer once it runs (a loaded one: at once)."""
    entry = _entry(model_id)
    reg = registry()
    if any(m.id == entry.id for m in reg.models):
        message = f"Model '{entry.id}' is already loaded"
    else:
        await reg.load(entry_spec(entry))
        message = f"Model '{entry.id}' loaded successfully"
    return json_response(ModelActionResponse(id=entry.id, status="loaded", message=message))


@blueprint.post("/v1/models/<path:model_id>/unload")
async def unload(model_id: str) -> Response:
    """Unload a catalog model; one that is not loaded stays ``available``."""
    entry = _entry(model_id)
    reg = registry()
    if any(m.id == entry.id for m in reg.models):
        await reg.unload(entry.id)
        message = f"Model '{entry.id}' unloaded successfully"
    else:
        message = f"Model '{entry.id}' was not loaded"
    return json_response(ModelActionResponse(id=entry.id, status="available", message=message))
