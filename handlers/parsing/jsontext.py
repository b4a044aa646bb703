"""JSON helpers: call ids, strict loads, closing a cut-off object, typed values."""

from __future__ import annotations

import ast
import json
import math
import secrets
from typing import Any


def new_call_id() -> str:
    """A tool-call id: ``call_`` and 24 hex digits."""
    return "call_" + secrets.token_hex(12)


def dumps(value: Any) -> str:
    """Compact-ish JSON text, non-ASCII kept."""
    return json.dumps(value, ensure_ascii=False)


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def loads(text: str) -> Any:
    """Strict JSON (no NaN or Infinity); raises ValueError."""
    return json.loads(text, parse_constant=_no_constant)


_MIDDLES = (
    "",
    "null",
    ":null",
    '"":null',
    "0",
    "e",
    "ue",
    "rue",
    "lse",
    "se",
    "alse",
    "l",
    "ll",
    "ull",
)


def completion(prefix: str) -> str:
    """The shortest-found text that makes ``prefix`` (a cut-off JSON object) valid JSON.

    Used when output ends inside a tool call whose arguments already streamed.
    """
    try:
        loads(prefix)
        return ""
    except ValueError:
        pass
    stack: list[str] = []
    in_string = escape = False
    hex_left = 0
    for ch in prefix:
        if in_string:
            if hex_left:
                hex_left -= 1
            elif escape:
                escape = False
                if ch == "u":
                    hex_left = 4
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
    head = ""
    if in_string:
        head = ("n" if escape else "") + "0" * hex_left + '"'
    closers = "".join(reversed(stack))
    for middle in _MIDDLES:
        tail = head + middle + closers
        try:
            loads(prefix + tail)
            return tail
        except ValueError:
            continue
    return head + closers


def schema_types(schema: dict[str, Any] | None) -> set[str]:
    """The JSON types a schema allows (from type, anyOf/oneOf, enum, const)."""
    if not schema:
        return set()
    out: set[str] = set()
    kind = schema.get("type")
    if isinstance(kind, str):
        out.add(kind)
    elif isinstance(kind, list):
        out.update(k for k in kind if isinstance(k, str))
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key) or []:
            if isinstance(sub, dict):
                out |= schema_types(sub)
    values = list(schema.get("enum") or [])
    if "const" in schema:
        values.append(schema["const"])
    for value in values:
        out.add(_json_type(value))
    return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _fits(value: Any, types: set[str]) -> bool:
    kind = _json_type(value)
    if kind == "integer" and "number" in types:
        return True
    if kind == "number" and "integer" in types and math.isfinite(value):
        return value == int(value)
    return kind in types


def typed_value(raw: str, schema: dict[str, Any] | None) -> str:
    """JSON text of a parameter value written as plain text, typed by its schema.

    Strings (and parameters without a known schema) stay strings; integer,
    number, boolean, null, object and array values are parsed (JSON, then
    Python literals such as ``True`` or ``{'a': 1}``). A value that does not
    parse stays a string, so no text is lost.
    """
    types = schema_types(schema)
    if not types or types == {"string"}:
        return dumps(raw)
    text = raw.strip()
    candidates: list[Any] = []
    try:
        candidates.append(loads(text))
    except ValueError:
        pass
    if text in ("True", "False", "None"):
        candidates.append({"True": True, "False": False, "None": None}[text])
    elif not candidates:
        try:
            candidates.append(ast.literal_eval(text))
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            pass
    for value in candidates:
        if _fits(value, types - {"string"}):
            try:
                return dumps(value)
            except (TypeError, ValueError):
                break
    if "string" in types:
        return dumps(raw)
    if candidates and isinstance(candidates[0], int | float | bool | list | dict | None):
        try:
            return dumps(candidates[0])
        except (TypeError, ValueError):
            pass
    return dumps(raw)
