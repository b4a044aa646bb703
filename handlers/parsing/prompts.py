"""Tool instructions for system messages, for chat templates that cannot render tools."""

from __future__ import annotations

import json
from typing import Any

_HERMES_CALL = (
    "For each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n"
    "<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call>"
)


def tools_json_lines(tools: list[dict[str, Any]]) -> str:
    """One JSON line per tool, each in the OpenAI ``{"type": "function", ...}`` shape."""
    lines = []
    for tool in tools:
        item = tool if "function" in tool else {"type": "function", "function": tool}
        lines.append(json.dumps(item, ensure_ascii=False))
    return "\n".join(lines)


def tools_prompt(tools: list[dict[str, Any]], call_format: str) -> str:
    """Qwen3's ``# Tools`` section: the tools inside ``<tools></tools>``, then the format."""
    return (
        "# Tools\n\n"
        "You may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n"
        f"<tools>\n{tools_json_lines(tools)}\n</tools>\n\n"
        f"{call_format}"
    )


def hermes_system_prompt(tools: list[dict[str, Any]]) -> str:
    """The Hermes / Qwen3 tool instructions."""
    return tools_prompt(tools, _HERMES_CALL)


def example_prompt(tools: list[dict[str, Any]], example: str) -> str:
    """Tool instructions for a markup family, with one example call in that markup."""
    return tools_prompt(
        tools,
        "For each function call, reply in exactly this format, one block per call; values "
        "that are not strings are written as JSON:\n" + example,
    )
