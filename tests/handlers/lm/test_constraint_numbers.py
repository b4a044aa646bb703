"""Constrained JSON numbers are bounded the same way in both renderings:
the regex MLX's outlines-core compiles and the Lark grammar llama.cpp's
llguidance compiles (integral part <= 16 digits, fraction <= 16, exponent <= 3)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from handlers.lm.constraints import (
    MAX_EXPONENT_DIGITS,
    MAX_FRACTION_DIGITS,
    MAX_INTEGRAL_DIGITS,
    to_lark,
    to_regex,
)
from handlers.parsing.pattern import Json, Lit, Pattern, Seq

NUMBER = {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}
INTEGER = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
ANY_OBJECT = {"type": "object"}


class _ByteTokenizer:
    """One token per byte, and an end-of-sequence token: enough for llguidance."""

    eos_token_id = 256
    bos_token_id = None
    tokens = [bytes([i]) for i in range(256)] + [b"<eos>"]

    def __call__(self, text: bytes) -> list[int]:
        return list(text)


def lark_accepts(pattern: Pattern, text: str) -> bool:
    from llguidance import LLMatcher, LLTokenizer, TokenizerWrapper

    tokenizer = LLTokenizer(TokenizerWrapper(_ByteTokenizer()))
    matcher = LLMatcher(tokenizer, to_lark(pattern), log_level=0)
    assert not matcher.is_error(), matcher.get_error()
    consumed = matcher.consume_tokens(list(text.encode()))
    return consumed and not matcher.is_error() and matcher.is_accepting()


def regex_accepts(pattern: Pattern, text: str) -> bool:
    return re.fullmatch(to_regex(pattern), text) is not None


RENDERINGS = [regex_accepts, lark_accepts]
IDS = ["regex", "lark"]
DIGITS_16 = "1234567890123456"
assert len(DIGITS_16) == MAX_INTEGRAL_DIGITS == MAX_FRACTION_DIGITS


@pytest.mark.parametrize("accepts", RENDERINGS, ids=IDS)
@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("0", True),
        ("-7", True),
        (DIGITS_16, True),
        (DIGITS_16 + "7", False),  # 17 integral digits
        ("-" + DIGITS_16, True),
        ("01", False),
        ("00", False),
        ("3.5", True),
        ("0." + DIGITS_16, True),
        ("0." + DIGITS_16 + "7", False),  # 17 fraction digits
        ("1.", False),
        ("1e5", True),
        ("1.5E-" + "9" * MAX_EXPONENT_DIGITS, True),
        ("1e+" + "9" * (MAX_EXPONENT_DIGITS + 1), False),
        ("1e", False),
        ("NaN", False),
    ],
)
def test_numbers_are_bounded(accepts: Any, value: str, ok: bool) -> None:
    assert accepts(Json(NUMBER), '{"x": ' + value + "}") is ok


@pytest.mark.parametrize("accepts", RENDERINGS, ids=IDS)
@pytest.mark.parametrize(
    ("value", "ok"),
    [("0", True), ("-12", True), (DIGITS_16, True), (DIGITS_16 + "7", False), ("1.5", False)],
)
def test_integers_are_bounded(accepts: Any, value: str, ok: bool) -> None:
    assert accepts(Json(INTEGER), '{"n": ' + value + "}") is ok


@pytest.mark.parametrize("accepts", RENDERINGS, ids=IDS)
def test_json_mode_numbers_are_bounded_too(accepts: Any) -> None:
    assert accepts(Json(ANY_OBJECT), '{"a": [1, 2.5, "' + DIGITS_16 + "7" + '"]}')
    assert accepts(Json(ANY_OBJECT), '{"a": ' + DIGITS_16 + "}")
    assert not accepts(Json(ANY_OBJECT), '{"a": ' + DIGITS_16 + "7}")


@pytest.mark.parametrize("accepts", RENDERINGS, ids=IDS)
def test_numbers_inside_tool_call_markup(accepts: Any) -> None:
    call = Seq((Lit('<tool_call>\n{"arguments": '), Json(NUMBER), Lit("}\n</tool_call>")))
    assert accepts(call, '<tool_call>\n{"arguments": {"x": 2.25}}\n</tool_call>')
    assert not accepts(call, '<tool_call>\n{"arguments": {"x": ' + DIGITS_16 + "9}}\n</tool_call>")


def test_both_renderings_use_one_expression_for_a_value() -> None:
    regex = to_regex(Json(NUMBER))
    lark = to_lark(Json(NUMBER))
    assert regex.startswith("(") and regex[1:-1] in lark.replace("\\/", "/")
