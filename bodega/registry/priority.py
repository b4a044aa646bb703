"""Request priority: the ``priority`` field, OpenAI's ``service_tier`` mapped
onto it, and the request-scoped value admission reads.

Priorities are integers 0-9, higher served first; the names are ``batch`` (0),
``normal`` (1, the default) and ``interactive`` (2). ``service_tier``:
``priority``/``scale`` → 2, ``default``/``auto`` (and Anthropic's
``standard_only``) → 1, ``flex`` → 0. ``priority`` wins when both are given.
A waiting request gains one level per ``priority_aging`` seconds
(``admission.py``), so low priority is never starved.
"""

from __future__ import annotations

import contextvars
from typing import Annotated, Literal

from msgspec import Meta

from bodega.errors import InvalidRequest

LOW, NORMAL, HIGH = 0, 1, 2
MAX_PRIORITY = 9
NAMES: dict[str, int] = {"batch": LOW, "normal": NORMAL, "interactive": HIGH}
SERVICE_TIERS: dict[str, int] = {
    "priority": HIGH,
    "scale": HIGH,
    "default": NORMAL,
    "auto": NORMAL,
    "standard_only": NORMAL,
    "flex": LOW,
}

# The request field's type (chat, completions, embeddings, rerank).
PriorityField = (
    Annotated[int, Meta(ge=0, le=MAX_PRIORITY)] | Literal["interactive", "normal", "batch"] | None
)

_CURRENT: contextvars.ContextVar[int] = contextvars.ContextVar("bodega_priority", default=NORMAL)


def priority_of(priority: int | str | None, service_tier: str | None) -> int | None:
    """The level a request asks for (None: it asks for none); a 400 names a
    ``service_tier`` that is not one of OpenAI's or Anthropic's."""
    if priority is not None:
        return NAMES[priority] if isinstance(priority, str) else priority
    if service_tier is None:
        return None
    level = SERVICE_TIERS.get(service_tier)
    if level is None:
        raise InvalidRequest(
            f"service_tier {service_tier!r} is not one of " + ", ".join(sorted(SERVICE_TIERS)),
            param="service_tier",
        )
    return level


def use_request_priority(body: object) -> None:
    """Take the priority of a decoded request body (its ``priority`` and
    ``service_tier`` fields, where it has them) for the rest of the request."""
    level = priority_of(getattr(body, "priority", None), getattr(body, "service_tier", None))
    if level is not None:
        _CURRENT.set(level)


def current_priority() -> int:
    """The priority of the request being served here (``NORMAL`` by default)."""
    return _CURRENT.get()
