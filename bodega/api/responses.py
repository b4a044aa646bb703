"""OpenAI's Responses API (``/v1/responses``) on the chat service."""

from __future__ import annotations

from quart import Blueprint

blueprint = Blueprint("responses", __name__)
