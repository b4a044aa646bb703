"""catalog.parsers: the parser names a model may be loaded with."""

from __future__ import annotations

from catalog.parsers import REASONING_PARSERS, TOOL_CALL_PARSERS

# The names the Bodega docs list for both options ("qwen3_coder": tool calls only).
DOCUMENTED = {
    "qwen3",
    "glm4_moe",
    "qwen3_coder",
    "qwen3_moe",
    "qwen3_next",
    "qwen3_vl",
    "harmony",
    "minimax_m2",
}


def test_the_documented_names_and_two_format_names() -> None:
    assert TOOL_CALL_PARSERS == DOCUMENTED | {"hermes"}
    assert REASONING_PARSERS == DOCUMENTED - {"qwen3_coder"} | {"deepseek_r1"}


def test_handlers_register_exactly_the_catalog_names() -> None:
    from handlers.parsing import REASONING_PARSERS as HANDLER_REASONING
    from handlers.parsing import TOOL_PARSERS as HANDLER_TOOLS

    assert set(HANDLER_TOOLS) == TOOL_CALL_PARSERS
    assert set(HANDLER_REASONING) == REASONING_PARSERS
