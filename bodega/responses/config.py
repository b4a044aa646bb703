"""The ``responses:`` section of ``config.yaml``."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta


class ResponsesSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The ``responses:`` section of ``config.yaml``."""

    # At most this many stored responses (the oldest go first), each kept at
    # most ``ttl`` seconds.
    max_stored: Annotated[int, Meta(ge=1)] = 10_000
    ttl: Annotated[float, Meta(gt=0)] = 30 * 24 * 3600.0
    # Built-in tool calls one response may run when the request does not say.
    max_tool_calls: Annotated[int, Meta(ge=1)] = 8
