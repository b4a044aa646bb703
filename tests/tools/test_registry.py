"""The toolbox without HTTP: definitions, argument validation, the calculator's time net."""

from __future__ import annotations

import time

import pytest

from bodega.errors import InvalidRequest, ToolNotFound
from bodega.tools import calculator
from bodega.tools.config import ToolsSection
from bodega.tools.registry import build_toolbox

TOOLBOX = build_toolbox(ToolsSection())


def test_definitions_are_openai_function_tools() -> None:
    names = [d["function"]["name"] for d in TOOLBOX.definitions()]
    assert names == ["calculator", "web_search", "news_search", "academic_search"]
    calc = TOOLBOX.definitions()[0]["function"]
    assert calc["parameters"] == {
        "type": "object",
        "properties": {
            "expression": {
                "description": calc["parameters"]["properties"]["expression"]["description"],
                "type": "string",
                "minLength": 1,
                "maxLength": calculator.MAX_LENGTH,
            }
        },
        "required": ["expression"],
        "additionalProperties": False,
    }
    assert "sqrt" in calc["description"]


async def test_execute_calculator() -> None:
    result = await TOOLBOX.execute("calculator", b'{"expression": "2**100"}')
    assert isinstance(result, calculator.Calculation)
    assert result.value == str(2**100)


async def test_unknown_tool() -> None:
    with pytest.raises(ToolNotFound) as caught:
        await TOOLBOX.execute("rm", b"{}")
    assert caught.value.status == 404
    assert caught.value.param == "tool_name"


@pytest.mark.parametrize(
    ("raw", "param", "says"),
    [
        (b'{"expression": 1}', "arguments.expression", "`arguments.expression`"),
        (b"{}", "arguments.expression", "Missing required field `arguments.expression`"),
        (b'{"expression": "1", "x": 2}', "arguments.x", "Unknown field `arguments.x`"),
        (b"[]", "arguments", "in `arguments`"),
        (b'"{\\"expression\\": 3}"', "arguments.expression", "Expected `str`"),
        (b'"1 + 1"', "arguments", "in `arguments`"),
        (b'"{oops"', "arguments", "not a JSON object"),
    ],
)
async def test_argument_errors_name_the_field(raw: bytes, param: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await TOOLBOX.execute("calculator", raw)
    assert caught.value.param == param
    assert says in caught.value.message


async def test_a_stuck_calculation_still_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    def stuck(expression: str) -> calculator.Calculation:
        time.sleep(1.5)
        raise AssertionError("abandoned")

    monkeypatch.setattr(calculator, "TIME_BUDGET", 0.0)
    monkeypatch.setattr(calculator, "calculate", stuck)
    start = time.monotonic()
    with pytest.raises(InvalidRequest, match="took too long") as caught:
        await TOOLBOX.execute("calculator", b'{"expression": "1"}')
    assert caught.value.param == "arguments.expression"
    assert time.monotonic() - start < 1.4
