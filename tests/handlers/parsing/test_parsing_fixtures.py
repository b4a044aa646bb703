"""Every recorded output, fed whole, in small pieces and split at every position."""

from __future__ import annotations

import json

import pytest

from handlers.parsing import Content, collect
from tests.handlers.parsing.parsing_harness import (
    MARKUP,
    Case,
    check_invariants,
    load_cases,
    random_pieces,
    run,
    summary,
)

CASES = load_cases()
IDS = [f"{c.family}-{c.id}" for c in CASES]
CLEAN = [c for c in CASES if c.clean]  # the rest expect raw text (malformed, cut off) in content


def test_every_family_has_fixtures() -> None:
    families = {c.family for c in CASES}
    assert families >= {"qwen3", "qwen3_coder", "glm4_moe", "minimax_m2", "harmony", "deepseek_r1"}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_whole_output_matches_expected(case: Case) -> None:
    events = run(case.parser(), [case.output])
    check_invariants(events)
    content, reasoning, calls = collect(events)
    assert content == case.content
    assert reasoning == case.reasoning
    got = [{"name": c.name, "arguments": json.loads(c.arguments)} for c in calls]
    assert got == case.tool_calls
    if case.clean:
        for event in events:
            if isinstance(event, Content):
                assert not any(m in event.text for m in MARKUP), event.text


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_small_pieces_give_the_same_result(case: Case) -> None:
    whole = summary(run(case.parser(), [case.output]))
    singles = run(case.parser(), list(case.output))
    check_invariants(singles)
    assert summary(singles) == whole
    for seed in range(5):
        events = run(case.parser(), random_pieces(case.output, seed))
        check_invariants(events)
        assert summary(events) == whole, seed


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_split_position_gives_the_same_result(case: Case) -> None:
    whole = summary(run(case.parser(), [case.output]))
    text = case.output
    for i in range(len(text) + 1):
        events = run(case.parser(), [text[:i], text[i:]])
        check_invariants(events)
        assert summary(events) == whole, i


@pytest.mark.parametrize("case", CLEAN, ids=[f"{c.family}-{c.id}" for c in CLEAN])
def test_no_markup_reaches_content_while_streaming(case: Case) -> None:
    for seed in range(3):
        for event in run(case.parser(), random_pieces(case.output, seed, 1, 4)):
            if isinstance(event, Content):
                assert not any(m in event.text for m in MARKUP), event.text
