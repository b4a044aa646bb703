"""``GET /openapi.json`` (generated from the wire types) and ``GET /docs``
(Swagger UI from the swagger-ui-py package: no CDN)."""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Response, send_from_directory

from bodega.openapi.document import openapi_document

from .common import json_response

blueprint = Blueprint("docs", __name__)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8"><title>Bodega API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
</script>
</body>
</html>
"""


def swagger_ui_folder() -> Path | None:
    """Swagger UI's static files, when swagger-ui-py is installed."""
    try:
        import swagger_ui
    except ImportError:
        return None
    return Path(swagger_ui.__file__).parent / "static"


@blueprint.get("/openapi.json")
async def openapi_json() -> Response:
    """The OpenAPI 3.1 document of every route."""
    return json_response(openapi_document())


@blueprint.get("/docs")
async def docs() -> Response:
    """Swagger UI over ``/openapi.json``."""
    return Response(_PAGE, content_type="text/html; charset=utf-8")


@blueprint.get("/docs/static/<path:name>")
async def docs_static(name: str) -> Response:
    """Swagger UI's scripts and styles, from the installed package."""
    folder = swagger_ui_folder()
    if folder is None:
        return Response("swagger-ui-py is not installed", status=404)
    return await send_from_directory(folder, name)
