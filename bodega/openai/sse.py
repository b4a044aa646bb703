"""Server-Sent Events framing as the OpenAI API streams it."""

from __future__ import annotations

from typing import Any

from .responses import encoder

DONE = b"data: [DONE]\n\n"


def event(payload: Any) -> bytes:
    """One ``data:`` event carrying ``payload`` as JSON."""
    return b"data: " + encoder.encode(payload) + b"\n\n"
