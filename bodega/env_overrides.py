"""Config sections with values from the environment (or a flag) laid over them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import msgspec

S = TypeVar("S", bound=msgspec.Struct)

# (what set it, the key path in the section, the value): ("environment variable
# PORT", ("port",), "8080") or ("--device", ("device",), "cpu").
Override = tuple[str, tuple[str, ...], Any]


def overridden(section: S, overrides: Iterable[Override]) -> S:
    """``section`` with ``overrides`` applied in order, each checked as it
    comes, so a ``ValueError`` names the first source whose value does not
    validate ("invalid environment variable PORT: ...")."""
    kind = type(section)
    raw: dict[str, Any] = msgspec.to_builtins(section)
    for source, path, value in overrides:
        target = raw
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        try:
            msgspec.convert(raw, type=kind, strict=False)
        except msgspec.ValidationError as exc:
            raise ValueError(f"invalid {source}: {exc}") from None
    return msgspec.convert(raw, type=kind, strict=False)


def variable(name: str) -> str:
    """How an override from the environment variable ``name`` is named."""
    return f"environment variable {name}"
