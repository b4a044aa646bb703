"""format_call, calls_pattern and system_prompt agree with the parsers; the registries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from handlers.parsing import (
    TOOL_PARSERS,
    Alt,
    FreeText,
    Json,
    Lit,
    Seq,
    collect,
    reasoning_pattern,
    tool_parser,
)
from handlers.parsing.reasoning import (
    REASONING_PARSERS,
    prompt_opens_reasoning,
    reasoning_parser,
)
from tests.handlers.parsing.parsing_harness import TOOLS, matches, run

FAMILIES = ["qwen3", "qwen3_coder", "glm4_moe", "minimax_m2", "harmony"]
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("get_weather", {"city": "Paris", "unit": "celsius", "days": 3}),
    ("get_weather", {"city": "Rio de Janeiro"}),
    ("search", {"query": "red shoes", "filters": {"tags": ["a", "b"]}, "limit": 2, "exact": True}),
    ("write_file", {"path": "a.py", "content": "x = 1\nprint(x)\n"}),
    ("get_time", {}),
]


def _tool(name: str) -> list[dict[str, Any]]:
    return [t for t in TOOLS if t["function"]["name"] == name]


def _grammar_text(family: str, text: str) -> str:
    # harmony's generation prompt already ends with <|start|>assistant
    return text.removeprefix("<|start|>assistant") if family == "harmony" else text


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("call", CALLS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CALLS)])
def test_format_call_parses_back(family: str, call: tuple[str, dict[str, Any]]) -> None:
    name, args = call
    text = tool_parser(family, TOOLS).format_call(name, args)
    content, reasoning, calls = collect(run(tool_parser(family, TOOLS), [text]))
    assert (content, reasoning) == ("", "")
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [(name, args)]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("call", CALLS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CALLS)])
def test_format_call_matches_calls_pattern(family: str, call: tuple[str, dict[str, Any]]) -> None:
    name, args = call
    parser = tool_parser(family, TOOLS)
    text = _grammar_text(family, parser.format_call(name, args))
    assert matches(parser.calls_pattern(TOOLS, parallel=False), text)
    assert matches(parser.calls_pattern(_tool(name), parallel=True), text)
    others = [t for t in TOOLS if t["function"]["name"] != name]
    assert not matches(parser.calls_pattern(others, parallel=False), text)


@pytest.mark.parametrize("family", ["qwen3", "qwen3_coder", "glm4_moe"])
def test_parallel_pattern_takes_newline_separated_calls(family: str) -> None:
    parser = tool_parser(family, TOOLS)
    text = "\n".join(parser.format_call(n, a) for n, a in CALLS[:3])
    assert matches(parser.calls_pattern(TOOLS, parallel=True), text)
    assert not matches(parser.calls_pattern(TOOLS, parallel=False), text)


def test_minimax_parallel_calls_share_one_block() -> None:
    parser = tool_parser("minimax_m2", TOOLS)
    text = parser.format_calls(CALLS[:3])  # type: ignore[attr-defined]
    assert text.count("<minimax:tool_call>") == 1
    assert matches(parser.calls_pattern(TOOLS, parallel=True), text)
    assert not matches(parser.calls_pattern(TOOLS, parallel=False), text)
    _, _, calls = collect(run(tool_parser("minimax_m2", TOOLS), [text]))
    assert [(c.name, json.loads(c.arguments)) for c in calls] == CALLS[:3]


@pytest.mark.parametrize("family", ["qwen3_coder", "glm4_moe", "minimax_m2"])
def test_xml_pattern_requires_required_parameters_and_types(family: str) -> None:
    parser = tool_parser(family, TOOLS)
    pattern = parser.calls_pattern(_tool("get_weather"), parallel=False)
    assert not matches(pattern, parser.format_call("get_weather", {"unit": "celsius"}))
    assert not matches(pattern, parser.format_call("get_weather", {"city": "X", "days": "two"}))
    assert not matches(pattern, parser.format_call("get_weather", {"city": "X", "unit": "kelvin"}))


def test_hermes_pattern_is_json_of_name_and_arguments() -> None:
    pattern = tool_parser("qwen3", TOOLS).calls_pattern(_tool("get_weather"), parallel=False)
    params = TOOLS[0]["function"]["parameters"]
    schema = {
        "type": "object",
        "properties": {"name": {"const": "get_weather"}, "arguments": params},
        "required": ["name", "arguments"],
    }
    assert pattern == Seq((Lit("<tool_call>\n"), Json(schema), Lit("\n</tool_call>")))
    many = tool_parser("qwen3", TOOLS).calls_pattern(TOOLS, parallel=False)
    assert isinstance(many, Seq) and isinstance(many.parts[1], Alt)
    assert len(many.parts[1].options) == len(TOOLS)


def test_xml_pattern_uses_free_text_for_strings_and_json_for_the_rest() -> None:
    pattern = tool_parser("qwen3_coder", TOOLS).calls_pattern(_tool("search"), parallel=False)
    assert isinstance(pattern, Seq)
    assert pattern.parts[0] == Lit("<tool_call>\n<function=search>\n<parameter=query>\n")
    assert pattern.parts[1] == FreeText("<")
    nodes = repr(pattern)
    assert "Json(schema={'type': 'integer'})" in nodes
    assert "Json(schema={'type': 'boolean'})" in nodes


@pytest.mark.parametrize("family", FAMILIES)
def test_calls_pattern_needs_a_tool(family: str) -> None:
    with pytest.raises(ValueError):
        tool_parser(family, TOOLS).calls_pattern([], parallel=False)


@pytest.mark.parametrize("family", FAMILIES)
def test_system_prompt_describes_tools_and_format(family: str) -> None:
    prompt = tool_parser(family, TOOLS).system_prompt(TOOLS)
    for tool in TOOLS:
        assert tool["function"]["name"] in prompt
    marker = {
        "qwen3": '{"name": <function-name>, "arguments": <args-json-object>}',
        "qwen3_coder": "<function=example_function_name>",
        "glm4_moe": "<arg_key>",
        "minimax_m2": "<invoke name=",
        "harmony": "namespace functions {",
    }[family]
    assert marker in prompt
    if family != "harmony":
        assert "<tools>\n" in prompt and "\n</tools>" in prompt


def test_harmony_prompt_writes_typescript_signatures() -> None:
    prompt = tool_parser("harmony", TOOLS).system_prompt(TOOLS)
    assert "// Current weather in a city." in prompt
    assert "type get_weather = (_: {" in prompt
    assert "city: string," in prompt
    assert 'unit?: "celsius" | "fahrenheit",' in prompt
    assert "type get_time = () => any;" in prompt


def test_registries_and_unknown_names() -> None:
    assert set(TOOL_PARSERS) == {
        "qwen3", "qwen3_moe", "qwen3_vl", "hermes", "qwen3_coder", "qwen3_next",
        "glm4_moe", "minimax_m2", "harmony",
    }  # fmt: skip
    assert set(REASONING_PARSERS) == {
        "qwen3", "qwen3_moe", "qwen3_next", "qwen3_vl", "glm4_moe", "minimax_m2",
        "deepseek_r1", "harmony",
    }  # fmt: skip
    with pytest.raises(ValueError, match="hermes"):
        tool_parser("llama3_json", TOOLS)
    with pytest.raises(ValueError, match="deepseek_r1"):
        reasoning_parser("nope")
    with pytest.raises(ValueError):
        reasoning_pattern("nope")


# The parser names the Bodega docs list ("Available Parsers"): qwen3_coder is
# for tool calls only.
DOCUMENTED = {
    "qwen3", "glm4_moe", "qwen3_coder", "qwen3_moe", "qwen3_next", "qwen3_vl",
    "harmony", "minimax_m2",
}  # fmt: skip


def test_every_documented_name_has_a_parser() -> None:
    assert set(TOOL_PARSERS) >= DOCUMENTED
    assert set(REASONING_PARSERS) >= DOCUMENTED - {"qwen3_coder"}
    for name in DOCUMENTED - {"qwen3_coder"}:
        parser = reasoning_parser(name)
        if name != "harmony":
            assert collect(parser.feed("<think>hm</think>ok") + parser.finish())[:2] == ("ok", "hm")


def test_reasoning_patterns() -> None:
    think = Seq((Lit("<think>"), FreeText("<"), Lit("</think>"), Lit("\n\n")))
    assert reasoning_pattern("qwen3") == Alt((think, Lit("")))
    assert matches(reasoning_pattern("deepseek_r1"), "<think>\nhm\n</think>\n\n")  # type: ignore[arg-type]
    assert matches(reasoning_pattern("glm4_moe"), "")  # type: ignore[arg-type]
    opened = reasoning_pattern("qwen3", starts_in_reasoning=True)
    assert opened is not None and matches(opened, "hm\n</think>\n\n")
    harmony = reasoning_pattern("harmony")
    assert harmony is not None
    assert matches(harmony, "<|channel|>analysis<|message|>hm<|end|><|start|>assistant")
    assert matches(harmony, "")


@pytest.mark.parametrize("family", FAMILIES)
def test_long_value_in_small_pieces(family: str) -> None:
    content = "if a < b:\n    print('</p>')\n" * 400
    text = tool_parser(family, TOOLS).format_call("write_file", {"path": "x", "content": content})
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    _, _, calls = collect(run(tool_parser(family, TOOLS), pieces))
    assert json.loads(calls[0].arguments) == {"path": "x", "content": content}


def test_prompt_opens_reasoning() -> None:
    assert prompt_opens_reasoning("<|im_start|>assistant\n<think>\n")
    assert not prompt_opens_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not prompt_opens_reasoning("<|im_start|>assistant\n")
    assert not prompt_opens_reasoning("<think>old</think>\nhi<|im_start|>assistant\n")


def test_package_imports_only_the_standard_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, handlers.parsing\n"
        "bad = {'mlx', 'torch', 'bodega', 'ipc', 'msgspec', 'trio', 'numpy', 'outlines_core'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in bad))\n"
    )
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "[]"
