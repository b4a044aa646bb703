"""Shared parts of the XML-parameter tool-call formats (Qwen3-Coder, GLM, MiniMax-M2).

Each parameter's value is plain text in the markup; the arguments JSON is built
from them, typed by the tool's parameter schema, one fragment per parameter
once its closing tag is seen.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .base import function_specs
from .base import parameters_of as _params
from .jsontext import dumps, schema_types
from .pattern import FreeText, Json, Lit, Pattern, alt, optional, seq
from .text import find_first

NAME_CHARS = re.compile(r"[\w.\-:/]*")


def could_start(s: str, *markers: str) -> bool:
    """Whether ``s`` is a (possibly empty) proper start of one of ``markers``."""
    return any(m.startswith(s) and m != s for m in markers)


def skip_junk(s: str) -> str:
    """Drop stray text inside a call, up to the next tag."""
    k = s.find("<", 1)
    return s[k:] if k >= 0 else ""


def text_value(value: Any) -> str:
    """A parameter value as the markup writes it: strings raw, the rest as JSON."""
    return value if isinstance(value, str) else dumps(value)


def _value_pattern(prop: dict[str, Any]) -> Pattern:
    """A string enum as its options, other strings as free text, the rest as JSON."""
    enum = prop.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        return alt([Lit(v) for v in enum])
    types = schema_types(prop)
    if not types or types == {"string"}:
        return FreeText("<")
    return Json(prop)


def params_pattern(fn: dict[str, Any], render: Callable[[str, Pattern], Pattern]) -> Pattern:
    """Parameters in schema order: required ones always, optional ones optionally."""
    params = _params(fn)
    props = params.get("properties") or {}
    required = set(params.get("required") or [])
    parts: list[Pattern] = []
    for key, prop in props.items():
        part = render(key, _value_pattern(prop if isinstance(prop, dict) else {}))
        parts.append(part if key in required else optional(part))
    return seq(*parts) if parts else Lit("")


def pattern_tools(tools: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(name, function) pairs for a grammar; at least one is needed."""
    specs = list(function_specs(tools).items())
    if not specs:
        raise ValueError("calls_pattern needs at least one tool")
    return specs


def call_pattern(
    tools: list[dict[str, Any]],
    opening: Callable[[str], str],
    render: Callable[[str, Pattern], Pattern],
    closing: str,
) -> Pattern:
    """One call to any of ``tools``: ``opening(name)``, its parameters (each
    written by ``render``), then ``closing``."""
    return alt(
        [
            seq(Lit(opening(name)), params_pattern(fn, render), Lit(closing))
            for name, fn in pattern_tools(tools)
        ]
    )


class OpenValue:
    """A parameter whose opening tag was read; its value runs to one of ``ends``.

    The search for the end resumes where it stopped, so long values stay linear.
    """

    def __init__(self, key: str, ends: tuple[str, ...]) -> None:
        self.key = key
        self._ends = ends
        self._longest = max(len(e) for e in ends)
        self._searched = 0

    def find(self, buffer: str) -> tuple[int, str]:
        """(position, marker) of the value's end in ``buffer``, or (-1, "")."""
        i, marker = find_first(buffer, self._ends, max(0, self._searched - self._longest))
        if i < 0:
            self._searched = len(buffer)
        return i, marker
