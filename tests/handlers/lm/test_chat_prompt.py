"""Chat templates, constraint rendering and the MLX guided-logits processor."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from handlers.engine_protocol import EngineError
from handlers.lm.chat_template import ChatTemplate
from handlers.lm.constraints import check_schema, closed, to_lark, to_regex
from handlers.parsing import tool_parser
from handlers.parsing.pattern import Alt, FreeText, Json, Lit, Repeat, Seq
from ipc.messages import ChatMessage, Generate, ToolCall, ToolSpec

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
TOOLS_AWARE = (
    "{% if tools %}TOOLS:{{ tools | tojson }}\n{% endif %}"
    "{% for m in messages %}{{ m.role }}:{{ m.content }}"
    "{% if m.tool_calls %}{{ m.tool_calls[0].function.arguments | tojson }}{% endif %}\n"
    "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)
WEATHER = ToolSpec(
    name="get_weather",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


def conversation() -> list[ChatMessage]:
    return [
        ChatMessage(role="user", content="Weather in Paris?"),
        ChatMessage(
            role="assistant",
            tool_calls=[ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')],
        ),
        ChatMessage(role="tool", content='{"temp": 21}', tool_call_id="call_1"),
    ]


def test_plain_template_gets_tool_instructions_and_markup() -> None:
    parser = tool_parser("qwen3", [{"type": "function", "function": {"name": "get_weather"}}])
    prompt = ChatTemplate(CHATML).render(
        conversation(),
        tools=[WEATHER],
        tool_prompt=parser.system_prompt,
        format_call=parser.format_call,
    )
    assert prompt.startswith("<|im_start|>system\n")
    assert "get_weather" in prompt.split("<|im_end|>")[0]
    assert "<tool_call>" in prompt and '"Paris"' in prompt
    assert '<tool_response>\n{"temp": 21}\n</tool_response>' in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def test_tools_aware_template_gets_structured_tools() -> None:
    prompt = ChatTemplate(TOOLS_AWARE).render(conversation(), tools=[WEATHER])
    first = prompt.splitlines()[0]
    assert first.startswith("TOOLS:")
    assert json.loads(first[len("TOOLS:") :])[0]["function"]["name"] == "get_weather"
    assert '{"city": "Paris"}' in prompt  # arguments reach the template as an object


def test_template_kwargs_reach_the_template() -> None:
    template = ChatTemplate("{{ 'on' if enable_thinking else 'off' }}")
    assert template.render([], kwargs={"enable_thinking": True}) == "on"
    assert template.render([], kwargs={"enable_thinking": False}) == "off"


THINKING = (
    "{% if enable_thinking is defined and not enable_thinking %}no-think{% else %}think{% endif %}"
)


@pytest.mark.parametrize(
    ("effort", "expected"),
    [(None, "think"), ("none", "no-think"), ("minimal", "no-think"), ("low", "think"),
     ("high", "think")],
)  # fmt: skip
def test_reasoning_effort_switches_thinking(effort: str | None, expected: str) -> None:
    assert ChatTemplate(THINKING).render([], reasoning_effort=effort) == expected


def test_chat_template_kwargs_win_over_reasoning_effort() -> None:
    template = ChatTemplate(THINKING)
    rendered = template.render([], kwargs={"enable_thinking": True}, reasoning_effort="none")
    assert rendered == "think"


def test_reasoning_effort_reaches_the_template() -> None:
    harmony_like = "Reasoning: {{ reasoning_effort | default('medium') }}"
    template = ChatTemplate(harmony_like)
    assert template.render([], reasoning_effort="high") == "Reasoning: high"
    assert template.render([]) == "Reasoning: medium"
    # A template without a thinking switch gets no enable_thinking.
    assert "enable_thinking" not in template.effort_variables("none")


def test_prepare_chat_passes_reasoning_effort() -> None:
    from handlers.lm.chat_request import prepare_chat

    spec = _spec()
    request = Generate(req_id=1, messages=[ChatMessage(role="user", content="hi")])
    template = ChatTemplate(THINKING)
    assert prepare_chat(request, template, spec).prompt == "think"
    request.reasoning_effort = "none"
    assert prepare_chat(request, template, spec).prompt == "no-think"


def _spec() -> Any:
    try:
        from catalog.options import LoadOptions
    except ImportError:  # before the catalog package
        from ipc.messages import LoadSpec  # type: ignore[attr-defined]

        return LoadSpec(model_id="m", model_path="m")
    return LoadOptions(model_path="m")


def test_template_errors_are_request_errors() -> None:
    template = ChatTemplate("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(EngineError, match="roles must alternate"):
        template.render([ChatMessage(role="user", content="hi")])


def test_closed_schema_forbids_extra_keys_unless_said() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "object", "properties": {"b": {"type": "integer"}}}},
        "additionalProperties": True,
    }
    out = closed(schema)
    assert out["additionalProperties"] is True
    assert out["properties"]["a"]["additionalProperties"] is False


def test_invalid_schema_is_refused_with_the_path() -> None:
    with pytest.raises(EngineError) as info:
        check_schema({"type": "object", "properties": {"a": {"type": "nope"}}})
    assert info.value.param == "response_format.json_schema.schema"
    assert "properties/a" in str(info.value)


def test_lark_rendering() -> None:
    pattern = Seq((Lit("<a>\n"), Alt((Json({"type": "integer"}), FreeText("<"))), Lit("</a>")))
    grammar = to_lark(Repeat(pattern, 1, 2))
    assert grammar.startswith("%llguidance {}\nstart: ")
    assert '"<a>\\n"' in grammar and "{1,2}" in grammar
    # The JSON value is a regex lexeme: the same expression MLX compiles.
    assert "(-)?(0|[1-9][0-9]{0,15})" in grammar


def test_regex_rendering_matches_what_it_should() -> None:
    pattern = Seq((Lit("<x>("), Json({"enum": ["a", "b"]}), Lit(")"), FreeText("<")))
    regex = re.compile(to_regex(pattern))
    assert regex.fullmatch('<x>("a")tail')
    assert not regex.fullmatch('<x>("c")tail')
    assert not regex.fullmatch('<x>("a")t<il')


def test_guided_logits_allow_only_the_pattern() -> None:
    mx = pytest.importorskip("mlx.core")
    from outlines_core import Index, Vocabulary

    from handlers.lm.mlx_guided import GuidedLogits

    vocabulary = Vocabulary(4, {b"a": [0], b"b": [1], b"ab": [2], b"c": [3]})
    processor = GuidedLogits(Index("a+b", vocabulary))
    logits = mx.zeros((1, 5))
    allowed = processor(mx.array([9]), logits)  # first call: the prompt's last token
    assert [i for i in range(5) if allowed[0, i].item() == 0] == [0, 2]
    allowed = processor(mx.array([9, 0]), logits)  # sampled "a"
    assert [i for i in range(5) if allowed[0, i].item() == 0] == [0, 1, 2]
    allowed = processor(mx.array([9, 0, 1]), logits)  # "ab": only EOS is left
    assert [i for i in range(5) if allowed[0, i].item() == 0] == [4]
