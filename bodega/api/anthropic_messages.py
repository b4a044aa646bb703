"""Anthropic's ``POST /v1/messages`` and ``/v1/messages/count_tokens`` on the chat service."""

from __future__ import annotations

from quart import Blueprint

blueprint = Blueprint("anthropic_messages", __name__)
