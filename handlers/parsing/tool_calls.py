"""The tool-call parser registry: ``tool_call_parser`` names -> parser families."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import ToolCallParser
from .glm4_moe import Glm4MoeToolParser
from .harmony import HarmonyParser
from .hermes import HermesToolParser
from .minimax_m2 import MiniMaxM2ToolParser
from .qwen3_coder import Qwen3CoderToolParser

# Every name the Bodega docs list for ``tool_call_parser``, and hermes (the
# format the qwen3 names share).
TOOL_PARSERS: dict[str, Callable[[list[dict[str, Any]]], ToolCallParser]] = {
    "hermes": HermesToolParser,
    "qwen3": HermesToolParser,
    "qwen3_moe": HermesToolParser,
    "qwen3_vl": HermesToolParser,
    "qwen3_coder": Qwen3CoderToolParser,
    "qwen3_next": Qwen3CoderToolParser,
    "glm4_moe": Glm4MoeToolParser,
    "minimax_m2": MiniMaxM2ToolParser,
    "harmony": HarmonyParser,
}


def tool_parser(name: str, tools: list[dict[str, Any]] | None) -> ToolCallParser:
    """A new parser of family ``name`` for one request's ``tools`` (OpenAI shape)."""
    factory = TOOL_PARSERS.get(name)
    if factory is None:
        valid = ", ".join(sorted(TOOL_PARSERS))
        raise ValueError(f"unknown tool call parser {name!r}; valid: {valid}")
    return factory(list(tools or []))
