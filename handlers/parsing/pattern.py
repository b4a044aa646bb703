"""A tiny grammar AST for constrained decoding; the engines render it (regex, GBNF)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Lit:
    """Exactly this text."""

    text: str


@dataclass(frozen=True, slots=True)
class Json:
    """Any JSON value valid against ``schema`` (a JSON schema)."""

    schema: dict[str, Any]

    def __hash__(self) -> int:
        return hash(json.dumps(self.schema, sort_keys=True, default=str))


@dataclass(frozen=True, slots=True)
class FreeText:
    """Any text, possibly empty, without any of the characters in ``exclude``,
    at most ``max_length`` characters long when that is set."""

    exclude: str = "<"
    max_length: int | None = None


@dataclass(frozen=True, slots=True)
class Seq:
    """Each part in turn."""

    parts: tuple[Pattern, ...]


@dataclass(frozen=True, slots=True)
class Alt:
    """Any one of the options."""

    options: tuple[Pattern, ...]


@dataclass(frozen=True, slots=True)
class Repeat:
    """``item`` between ``min`` and ``max`` times (``max=None``: unbounded)."""

    item: Pattern
    min: int = 1
    max: int | None = None


Pattern = Lit | Json | FreeText | Seq | Alt | Repeat


def optional(item: Pattern) -> Pattern:
    """``item`` or nothing."""
    return Alt((item, Lit("")))


def seq(*parts: Pattern) -> Pattern:
    """A flat Seq with neighbouring literals joined and a single part unwrapped."""
    out: list[Pattern] = []
    flat: list[Pattern] = []
    for part in parts:
        flat.extend(part.parts if isinstance(part, Seq) else (part,))
    for part in flat:
        if isinstance(part, Lit) and out and isinstance(out[-1], Lit):
            out[-1] = Lit(out[-1].text + part.text)
        elif not (isinstance(part, Lit) and not part.text):
            out.append(part)
    if len(out) == 1:
        return out[0]
    return Seq(tuple(out))


def alt(options: list[Pattern]) -> Pattern:
    """An Alt, or the single option itself."""
    return options[0] if len(options) == 1 else Alt(tuple(options))
