"""Constrained decoding: what a request's output must look like, as a grammar.

A request's constraint (a JSON schema from ``response_format``, or the tool
calls that ``tool_choice`` demands in the parser's markup) is a small
``Pattern`` tree from ``handlers.parsing.pattern``. llama.cpp takes it rendered
as a Lark grammar for its llguidance sampler; MLX takes it as a regular
expression compiled by outlines-core into a token-level automaton.

Every JSON value (``Json``) is the same regular expression on both engines:
outlines-core's rendering of the schema, with its numbers bounded as llama.cpp's
json-schema-to-grammar bounds them, so that a model cannot emit digits until
it runs out of tokens. A number has an integral part of at most
``MAX_INTEGRAL_DIGITS`` digits (no leading zeros except a lone "0"), an
optional fraction of at most ``MAX_FRACTION_DIGITS`` digits and an optional
exponent of at most ``MAX_EXPONENT_DIGITS`` digits; an integer is the
integral part alone. llguidance takes the expression as one lexeme.
"""

from __future__ import annotations

import json
from typing import Any

from handlers.engine_protocol import EngineError
from handlers.parsing.pattern import Alt, FreeText, Json, Lit, Pattern, Repeat, Seq

# The most digits of a constrained JSON number's parts (llama.cpp's bounds;
# JSON exponents beyond 3 digits overflow a double anyway).
MAX_INTEGRAL_DIGITS = 16
MAX_FRACTION_DIGITS = 16
MAX_EXPONENT_DIGITS = 3
BOUNDED_INTEGER = f"(-)?(0|[1-9][0-9]{{0,{MAX_INTEGRAL_DIGITS - 1}}})"
BOUNDED_NUMBER = (
    f"({BOUNDED_INTEGER})(\\.[0-9]{{1,{MAX_FRACTION_DIGITS}}})?"
    f"([eE][+-]?[0-9]{{1,{MAX_EXPONENT_DIGITS}}})?"
)
# The request field a schema comes from, unless it came from ``tools``.
SCHEMA_PARAM = "response_format.json_schema.schema"


class UnsupportedSchema(EngineError):
    """A JSON schema (or grammar) the engine cannot compile."""


def check_schema(schema: dict[str, Any]) -> None:
    """Refuse a ``response_format`` schema that is not a valid JSON schema."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "the schema root"
        raise UnsupportedSchema(
            f"response_format.json_schema.schema is not a valid JSON schema at {where}: "
            f"{exc.message}",
            param="response_format.json_schema.schema",
        ) from None


def closed(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` wherever it lists properties
    and says nothing else: the answer has the keys asked for (outlines-core
    already reads schemas this way; said explicitly so that no compiler lets
    a model add keys until it runs out of tokens)."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: closed(value) for key, value in schema.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


# --- Lark (llama.cpp's llguidance) ------------------------------------------


def to_lark(pattern: Pattern, param: str = SCHEMA_PARAM) -> str:
    """``pattern`` as an llguidance Lark grammar whose start rule is ``start``;
    a schema that cannot be compiled is refused naming ``param``."""
    rules: list[str] = []

    def rule(body: str) -> str:
        name = f"r{len(rules)}"
        rules.append(f"{name}: {body}")
        return name

    def expr(p: Pattern) -> str:
        if isinstance(p, Lit):
            return json.dumps(p.text) if p.text else '""'
        if isinstance(p, Json):
            return rule("/" + _lark_regex(schema_regex(p.schema, param)) + "/")
        if isinstance(p, FreeText):
            chars = "".join(f"\\x{ord(c):02x}" if ord(c) < 0x80 else c for c in p.exclude)
            if p.max_length is not None:
                return f"(/[^{chars}]{{1,{p.max_length}}}/)?"
            return f"(/[^{chars}]+/)?"
        if isinstance(p, Seq):
            return "(" + " ".join(expr(q) for q in p.parts) + ")" if p.parts else '""'
        if isinstance(p, Alt):
            return "(" + " | ".join(expr(q) for q in p.options) + ")"
        if isinstance(p, Repeat):
            item = expr(p.item)
            high = "" if p.max is None else str(p.max)
            return f"{item}{{{p.min},{high}}}"
        raise TypeError(f"not a pattern: {p!r}")

    start = expr(pattern)
    return "\n".join(["%llguidance {}", f"start: {start}", *rules])


def _lark_regex(regex: str) -> str:
    """``regex`` written for a Lark ``/.../`` literal: every bare "/" escaped."""
    out: list[str] = []
    i = 0
    while i < len(regex):
        if regex[i] == "\\":
            out.append(regex[i : i + 2])
            i += 2
            continue
        out.append("\\/" if regex[i] == "/" else regex[i])
        i += 1
    return "".join(out)


# --- regular expressions (outlines-core) ----------------------------------

_REGEX_META = set("\\.^$|?*+()[]{}/-")


def _escape(text: str) -> str:
    out = []
    for ch in text:
        if ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch in _REGEX_META:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def bounded_numbers(regex: str) -> str:
    """outlines-core's rendering of a schema with every unbounded JSON number
    and integer replaced by the bounded ones (see the module's docstring)."""
    from outlines_core.json_schema import INTEGER, NUMBER

    # NUMBER contains INTEGER's text: replace it first (its bounded form does not).
    return regex.replace(NUMBER, BOUNDED_NUMBER).replace(INTEGER, BOUNDED_INTEGER)


def schema_regex(schema: dict[str, Any], param: str = SCHEMA_PARAM) -> str:
    """The regex of JSON values valid against ``schema``, numbers bounded;
    a 400 naming ``param`` when the schema cannot be compiled."""
    from outlines_core.json_schema import build_regex_from_schema

    try:
        regex = str(build_regex_from_schema(json.dumps(closed(schema))))
    except Exception as exc:  # outlines-core raises ValueError / its own errors
        raise UnsupportedSchema(
            f"the JSON schema cannot be compiled for constrained decoding: {exc}",
            param=param,
        ) from exc
    return bounded_numbers(regex)


def to_regex(pattern: Pattern, param: str = SCHEMA_PARAM) -> str:
    """``pattern`` as a regular expression in outlines-core's dialect; a schema
    that cannot be compiled is refused naming ``param``."""
    if isinstance(pattern, Lit):
        return _escape(pattern.text)
    if isinstance(pattern, Json):
        return f"({schema_regex(pattern.schema, param)})"
    if isinstance(pattern, FreeText):
        repeat = "*" if pattern.max_length is None else f"{{0,{pattern.max_length}}}"
        return "[^" + _escape(pattern.exclude) + "]" + repeat
    if isinstance(pattern, Seq):
        return "".join(to_regex(p, param) for p in pattern.parts)
    if isinstance(pattern, Alt):
        return "(" + "|".join(to_regex(p, param) for p in pattern.options) + ")"
    if isinstance(pattern, Repeat):
        high = "" if pattern.max is None else str(pattern.max)
        return f"({to_regex(pattern.item, param)}){{{pattern.min},{high}}}"
    raise TypeError(f"not a pattern: {pattern!r}")
