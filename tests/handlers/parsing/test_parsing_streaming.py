"""Latency: text and arguments come out as soon as the format allows."""

from __future__ import annotations

from handlers.parsing import (
    Content,
    OutputParser,
    Reasoning,
    ToolCallArgs,
    ToolCallStart,
    reasoning_parser,
    tool_parser,
)
from tests.handlers.parsing.parsing_harness import TOOLS


def test_hermes_streams_text_and_arguments() -> None:
    p = tool_parser("qwen3", TOOLS)
    assert p.feed("Hello wor") == [Content("Hello wor")]
    assert p.feed("ld <tool") == [Content("ld")]
    events = p.feed('_call>\n{"name": "get_weather", "arguments": {"ci')
    assert isinstance(events[0], ToolCallStart) and events[0].name == "get_weather"
    assert events[1:] == [ToolCallArgs(0, '{"ci')]
    assert p.feed('ty": "Paris"}') == [ToolCallArgs(0, 'ty": "Paris"}')]
    assert p.feed("}\n</tool_call>") == []
    assert p.feed("\n<tool_call>\n") == []
    events = p.feed('{"name": "get_time", "arguments": {}}\n</tool_call>')
    assert [type(e) for e in events] == [ToolCallStart, ToolCallArgs]
    assert events[0].index == 1  # type: ignore[union-attr]
    assert p.finish() == []


def test_marker_prefix_is_held_then_released() -> None:
    p = tool_parser("hermes", TOOLS)
    assert p.feed("a <") == [Content("a")]
    assert p.feed("b>") == [Content(" <b>")]
    assert p.feed("<tool_c") == []
    assert p.finish() == [Content("<tool_c")]


def test_plain_text_keeps_every_character() -> None:
    text = "x  <tool y\n\n < tool_call> z \n"
    for name in ("qwen3", "qwen3_coder", "glm4_moe", "minimax_m2", "harmony"):
        p = tool_parser(name, TOOLS)
        out = [e for ch in text for e in p.feed(ch)] + p.finish()
        assert "".join(e.text for e in out if isinstance(e, Content)) == text, name


def test_qwen3_coder_emits_each_parameter_at_its_closing_tag() -> None:
    p = tool_parser("qwen3_coder", TOOLS)
    events = p.feed("<tool_call>\n<function=get_weather>\n<parameter=city>\nPar")
    assert isinstance(events[0], ToolCallStart) and len(events) == 1
    assert p.feed("is\n</parameter>\n") == [ToolCallArgs(0, '{"city": "Paris"')]
    assert p.feed("<parameter=days>\n4\n</parameter>\n") == [ToolCallArgs(0, ', "days": 4')]
    assert p.feed("</function>") == [ToolCallArgs(0, "}")]
    assert p.feed("\n</tool_call>") == []
    assert p.finish() == []


def test_glm_and_minimax_emit_each_parameter_at_its_closing_tag() -> None:
    glm = tool_parser("glm4_moe", TOOLS)
    start = glm.feed("<tool_call>get_weather\n<arg_key>city</arg_key>")
    assert [type(e) for e in start] == [ToolCallStart]
    assert glm.feed("<arg_value>Rome</arg_value>") == [ToolCallArgs(0, '{"city": "Rome"')]
    mm = tool_parser("minimax_m2", TOOLS)
    start = mm.feed('<minimax:tool_call>\n<invoke name="get_weather">\n')
    assert [type(e) for e in start] == [ToolCallStart]
    assert mm.feed('<parameter name="city">Rome</parameter>') == [
        ToolCallArgs(0, '{"city": "Rome"')
    ]
    assert mm.feed("\n</invoke>") == [ToolCallArgs(0, "}")]


def test_harmony_streams_reasoning_content_and_arguments() -> None:
    p = tool_parser("harmony", TOOLS)
    assert p.feed("<|channel|>analysis<|message|>Let me th") == [Reasoning("Let me th")]
    assert p.feed("ink<|e") == [Reasoning("ink")]
    assert p.feed("nd|><|start|>assistant<|channel|>commentary to=functions.get_weather") == []
    events = p.feed(' <|constrain|>json<|message|>{"city":')
    assert isinstance(events[0], ToolCallStart) and events[0].name == "get_weather"
    assert events[1:] == [ToolCallArgs(0, '{"city":')]
    assert p.feed('"Oslo"}<|call|>') == [ToolCallArgs(0, '"Oslo"}')]
    assert p.finish() == []


def test_think_streams_reasoning_and_holds_only_a_partial_close() -> None:
    p = reasoning_parser("qwen3")
    assert p.feed("<thi") == []
    assert p.feed("nk>\nStep one") == [Reasoning("Step one")]
    assert p.feed(".\n</thi") == [Reasoning(".")]
    assert p.feed("nk>\n\nAns") == [Content("Ans")]
    assert p.feed("wer") == [Content("wer")]
    assert p.finish() == []


def test_chain_sends_only_content_through_the_tool_parser() -> None:
    chain = OutputParser(reasoning_parser("qwen3"), tool_parser("qwen3", TOOLS))
    events = chain.feed("<think>I may write <tool_call> here</think>\n\n<tool_call>\n")
    assert events == [Reasoning("I may write <tool_call> here")]
    events = chain.feed('{"name": "get_time", "arguments": {}}\n</tool_call>')
    assert [type(e) for e in events] == [ToolCallStart, ToolCallArgs]
    assert chain.finish() == []


def test_harmony_tool_parser_replaces_a_reasoning_parser() -> None:
    chain = OutputParser(reasoning_parser("harmony"), tool_parser("harmony", TOOLS))
    assert chain.reasoning is None
    events = chain.feed("<|channel|>analysis<|message|>x<|end|>") + chain.finish()
    assert events == [Reasoning("x")]


def test_no_parsers_pass_text_through() -> None:
    chain = OutputParser(None, None)
    assert chain.feed("<tool_call>") == [Content("<tool_call>")]
    assert chain.finish() == []
