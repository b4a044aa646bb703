"""Random mixes of markup and text: no crash, the same result however the text is split."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from handlers.parsing import Content, OutputParser, reasoning_parser, tool_parser
from tests.handlers.parsing.parsing_harness import (
    TOOLS,
    check_invariants,
    random_pieces,
    run,
    summary,
)

COMMON = ["\n", " ", "Hello", "<", "</", "x<y", '"', "{", "}", "é"]
VOCAB = {
    "qwen3": [
        "<tool_call>",
        "</tool_call>",
        "<tool",
        "<think>",
        "</think>",
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        '{"name": "get_time", "arguments": {}}',
        '{"arguments": {}, "name": "get_time"}',
        '{"name": "search", "arguments": {"query": "a", "exact": True,}}',
        '{"name": "get_weather", "arguments": {"city": "P',
        '{"name": "get_weather", "arguments": ',
        "not json",
    ],
    "qwen3_coder": [
        "<tool_call>",
        "</tool_call>",
        "<function=get_weather>",
        "<function=search>",
        "</function>",
        "<parameter=city>",
        "<parameter=days>",
        "<parameter=filters>",
        "</parameter>",
        "\nParis\n",
        "3",
        '{"tags": []}',
        "<func",
    ],
    "glm4_moe": [
        "<tool_call>",
        "</tool_call>",
        "get_weather",
        "get time",
        "<arg_key>",
        "</arg_key>",
        "<arg_value>",
        "</arg_value>",
        "city",
        "days",
        "Paris",
        "2",
    ],
    "minimax_m2": [
        "<minimax:tool_call>",
        "</minimax:tool_call>",
        '<invoke name="get_weather">',
        '<invoke name="search">',
        "</invoke>",
        '<parameter name="city">',
        '<parameter name="exact">',
        "</parameter>",
        "Paris",
        "true",
        "<invoke",
    ],
    "harmony": [
        "<|start|>assistant",
        "<|channel|>",
        "analysis",
        "final",
        "commentary",
        " to=functions.get_weather",
        " to=python",
        " <|constrain|>json",
        "<|message|>",
        '{"city": "Oslo"}',
        '{"city": ',
        "<|end|>",
        "<|call|>",
        "<|return|>",
        "<|",
    ],
}
FACTORIES: dict[str, Callable[[], OutputParser]] = {
    "qwen3": lambda: OutputParser(reasoning_parser("qwen3"), tool_parser("qwen3", TOOLS)),
    "qwen3_coder": lambda: OutputParser(None, tool_parser("qwen3_coder", TOOLS)),
    "glm4_moe": lambda: OutputParser(reasoning_parser("glm4_moe"), tool_parser("glm4_moe", TOOLS)),
    "minimax_m2": lambda: OutputParser(None, tool_parser("minimax_m2", TOOLS)),
    "harmony": lambda: OutputParser(None, tool_parser("harmony", TOOLS)),
}


def _samples(family: str, count: int) -> list[str]:
    rng = random.Random(family)
    vocab = VOCAB[family] + COMMON
    return ["".join(rng.choices(vocab, k=rng.randint(2, 14))) for _ in range(count)]


@pytest.mark.parametrize("family", sorted(VOCAB))
def test_random_outputs_split_anywhere(family: str) -> None:
    make = FACTORIES[family]
    for text in _samples(family, 60):
        whole_events = run(make(), [text])
        check_invariants(whole_events)
        whole = summary(whole_events)
        for seed in range(2):
            events = run(make(), random_pieces(text, seed))
            check_invariants(events)
            assert summary(events) == whole, (text, seed)
        for i in range(0, len(text) + 1, 3):
            assert summary(run(make(), [text[:i], text[i:]])) == whole, (text, i)


@pytest.mark.parametrize("family", sorted(VOCAB))
def test_text_without_markup_is_untouched(family: str) -> None:
    rng = random.Random(1)
    for _ in range(30):
        text = "".join(rng.choices([*COMMON, "<tool", "<|chan", "<min", " \n "], k=12))
        events = run(FACTORIES[family](), random_pieces(text, 3))
        assert all(isinstance(e, Content) for e in events)
        assert "".join(e.text for e in events if isinstance(e, Content)) == text
