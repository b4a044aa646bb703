"""The OpenAPI 3.1 document, generated from the msgspec types of every route."""

from __future__ import annotations

import functools
import re
from typing import Any

import msgspec

import bodega
from bodega.anthropic.errors import is_anthropic_path

from .operations import OPERATIONS, AnthropicError, ErrorBody, Operation

REF = "#/components/schemas/{name}"
# The errors every route may answer, with their usual meaning.
ERRORS = {
    400: "Invalid request: the field at fault is in error.param",
    404: "Not found: no such model, file or route",
    409: "Conflict",
    413: "The body is too large",
    415: "Unsupported media type",
    422: "The content cannot be used",
    429: "The model's queue is full (Retry-After)",
    500: "The model failed",
    502: "An upstream (the hub, a tool provider) failed",
    503: "The model is not running",
    504: "The request waited longer than queue_timeout",
    507: "Not enough disk space",
}


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The whole document (built once: the types do not change at run time)."""
    types: list[Any] = [ErrorBody, AnthropicError]
    for op in OPERATIONS:
        for t in (op.body, op.form, *op.answers.values()):
            types += list(t) if isinstance(t, tuple) else [t]
    types = [t for t in types if t is not None]
    by_type: dict[Any, Any] = {}
    components: dict[str, Any] = {}
    for kind in dict.fromkeys(types):
        try:
            (schema,), found = msgspec.json.schema_components([kind], ref_template=REF)
        except TypeError:
            # A union msgspec cannot describe (the embedding of EmbeddingItem is
            # floats, base64 or a list of vectors): any JSON object.
            schema, found = {"type": "object", "title": getattr(kind, "__name__", "")}, {}
        by_type[kind] = schema
        components.update(found)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, by_type)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Bodega",
            "version": bodega.__version__,
            "description": "A local inference engine that speaks the OpenAI API.",
        },
        "paths": paths,
        "components": {"schemas": _nullable_bytes(components)},
    }


def _operation(op: Operation, schema_of: dict[Any, Any]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for status, kind in op.answers.items():
        content: dict[str, Any] = {"application/json": {"schema": _schema(kind, schema_of)}}
        if status == 200:
            content.update(_extra_media(op))
        answers[str(status)] = {
            "description": "Success" if status < 400 else "",
            "content": content,
        }
    if not op.answers or (op.streams and 200 not in op.answers):
        answers["200"] = {"description": "Success", "content": _extra_media(op)}
    # The server answers errors in Anthropic's shape on Anthropic's routes.
    shape = AnthropicError if is_anthropic_path(op.path) else ErrorBody
    error = {"application/json": {"schema": schema_of[shape]}}
    for status, meaning in ERRORS.items():
        answers.setdefault(str(status), {"description": meaning, "content": error})
    operation: dict[str, Any] = {
        "summary": op.summary,
        "operationId": _operation_id(op),
        "tags": list(op.tags),
        "responses": answers,
    }
    params = re.findall(r"{(\w+)}", op.path)
    if params:
        operation["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
    if op.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema_of[op.body]}},
        }
    elif op.form is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": schema_of[op.form]}},
        }
    return operation


def _schema(kind: Any, schema_of: dict[Any, Any]) -> dict[str, Any]:
    """An answer's schema: any JSON (``None``), one type's, or any of a tuple's."""
    if kind is None:
        return {}
    if isinstance(kind, tuple):
        return {"anyOf": [schema_of[t] for t in kind]}
    schema: dict[str, Any] = schema_of[kind]
    return schema


def _extra_media(op: Operation) -> dict[str, Any]:
    media: dict[str, Any] = {m: {"schema": {"type": "string"}} for m in op.other_media}
    if op.streams:
        media["text/event-stream"] = {"schema": {"type": "string"}}
    return media


def _operation_id(op: Operation) -> str:
    words = re.sub(r"[{}]", "", op.path).strip("/").replace("/", "_").replace("-", "_")
    return f"{op.method}_{words}"


def _nullable_bytes(components: dict[str, Any]) -> dict[str, Any]:
    """msgspec gives ``bytes`` as base64 strings; in a multipart form they are files."""
    for name in ("AudioForm", "ImageEditForm", "UploadForm"):
        for prop in components.get(name, {}).get("properties", {}).values():
            if prop.get("contentEncoding") == "base64":
                prop.pop("contentEncoding")
                prop["format"] = "binary"
            for option in prop.get("anyOf", []):
                if option.get("contentEncoding") == "base64":
                    option.pop("contentEncoding")
                    option["format"] = "binary"
    return components
