"""The tool-call and reasoning parser names a model may be loaded with.

Every name the Bodega docs list, plus two that name a shared format directly
(hermes: the ``<tool_call>`` JSON the qwen3 names use; deepseek_r1: the
``<think>`` block). handlers.parsing registers one parser for each name (a
test holds them equal); the server refuses any other name with a 400 at load.
"""

from __future__ import annotations

REASONING_PARSERS: frozenset[str] = frozenset(
    {
        "qwen3",
        "qwen3_moe",
        "qwen3_next",
        "qwen3_vl",
        "glm4_moe",
        "harmony",
        "minimax_m2",
        "deepseek_r1",
    }
)

# qwen3_coder marks up tool calls only; it has no reasoning format of its own.
TOOL_CALL_PARSERS: frozenset[str] = (REASONING_PARSERS - {"deepseek_r1"}) | {
    "qwen3_coder",
    "hermes",
}
