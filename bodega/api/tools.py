"""Built-in tools: ``GET /v1/tools`` and ``POST /v1/tools/execute``."""

from __future__ import annotations

from typing import Annotated, cast

import msgspec
from quart import Blueprint, Response, current_app

from bodega.settings import Settings
from bodega.tools.registry import Toolbox, build_toolbox

from .common import decode_json, json_response

blueprint = Blueprint("tools", __name__)


class ExecuteRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The ``/v1/tools/execute`` body; ``arguments`` is validated by the named tool."""

    tool_name: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    arguments: msgspec.Raw = msgspec.Raw(b"{}")


class ExecuteResponse(msgspec.Struct, kw_only=True):
    """A tool's result."""

    tool_name: str
    result: object


def toolbox() -> Toolbox:
    """The app's toolbox, built from its settings on first use."""
    tools = current_app.extensions.get("bodega.tools")
    if tools is None:
        settings = cast(Settings, current_app.extensions["bodega.settings"])
        tools = current_app.extensions.setdefault("bodega.tools", build_toolbox(settings.tools))
    return cast(Toolbox, tools)


@blueprint.get("/v1/tools")
async def list_tools() -> Response:
    """Every built-in tool in OpenAI ``tools`` format."""
    return json_response({"object": "list", "data": toolbox().definitions()})


@blueprint.post("/v1/tools/execute")
async def execute_tool() -> Response:
    """Run one tool: 404 for an unknown tool, 400 naming a bad argument, 502 when its
    provider fails."""
    body = await decode_json(ExecuteRequest)
    result = await toolbox().execute(body.tool_name, bytes(body.arguments))
    return json_response(ExecuteResponse(tool_name=body.tool_name, result=result))
