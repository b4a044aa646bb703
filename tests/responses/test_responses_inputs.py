"""Responses input items -> chat messages, tools, truncation and the output builder
(no server)."""

from __future__ import annotations

import msgspec
import pytest

from bodega.errors import InvalidRequest
from bodega.responses.inputs import (
    chat_body,
    chat_messages,
    opaque_reasoning,
    parse_items,
    parse_tools,
)
from bodega.responses.output import OutputBuilder
from bodega.responses.run import drop_oldest_turn
from bodega.responses.types import CreateResponse, MessageItem, Response
from bodega.tools.config import ToolsSection
from bodega.tools.registry import build_toolbox
from ipc.messages import Delta, ToolCallDelta, Usage

TOOLBOX = build_toolbox(ToolsSection())


def test_a_conversation_becomes_chat_messages() -> None:
    items = parse_items(
        [
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "reasoning", "summary": [], "encrypted_content": opaque_reasoning("hmm")},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": '{"c": 1}'},
            {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "c2",
             "output": [{"type": "input_text", "text": "rain"}]},
        ]
    )  # fmt: skip
    assert all(item.id for item in items)
    messages = chat_messages("Be brief.", items)
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "tool"]
    assistant = messages[2]
    assert assistant.content == "Checking." and assistant.reasoning_content == "hmm"
    assert [c.id for c in assistant.tool_calls or []] == ["c1", "c2"]
    assert (messages[3].content, messages[4].content) == ("sunny", "rain")


def test_string_content_is_kept_as_parts() -> None:
    [user, assistant] = parse_items(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    )
    assert msgspec.to_builtins(user.content) == [{"type": "input_text", "text": "hi"}]  # type: ignore[union-attr]
    assert msgspec.to_builtins(assistant.content)[0]["type"] == "output_text"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ([{"role": "user"}], "input[0].content"),
        ([{"type": "nonsense"}], "input[0].type"),
        ([{"role": "user", "content": [{"type": "input_text"}]}], "input[0].content[0].text"),
    ],
)
def test_bad_items_name_the_field(raw: list[dict[str, object]], param: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        parse_items(raw)
    assert error.value.param == param


def test_built_in_tools_are_functions_the_server_runs() -> None:
    tools = parse_tools(
        [{"type": "web_search_preview"}, {"type": "function", "name": "f", "parameters": {}}],
        TOOLBOX,
    )
    assert [t.function.name for t in tools.chat] == ["web_search", "f"]
    assert tools.builtins == {"web_search"}
    body = CreateResponse(model="m", input="hi", tool_choice={"type": "web_search_preview"})
    chat = chat_body(body, parse_items("hi"), tools)
    assert chat.tool_choice.function.name == "web_search"  # type: ignore[union-attr]


def test_truncation_drops_whole_turns_and_keeps_instructions() -> None:
    items = parse_items(
        [
            {"role": "developer", "content": "rules"},
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "1"},
            {"role": "user", "content": "two"},
        ]
    )
    assert drop_oldest_turn(items)
    assert [(i.role, i.content[0].text) for i in items if isinstance(i, MessageItem)] == [  # type: ignore[union-attr]
        ("developer", "rules"),
        ("user", "two"),
    ]
    assert not drop_oldest_turn(items)


def test_the_builder_opens_one_item_at_a_time() -> None:
    response = Response(id="resp_1", created_at=0, status="in_progress", model="m")
    builder = OutputBuilder(response, stream=True, logprobs=False, opaque_reasoning=True)
    builder.add_delta(Delta(req_id=1, reasoning="think"))
    builder.add_delta(Delta(req_id=1, text="Hel"))
    builder.add_delta(Delta(req_id=1, text="lo"))
    builder.add_delta(Delta(req_id=1, tool_calls=[ToolCallDelta(index=0, id="c", name="f")]))
    builder.add_delta(Delta(req_id=1, tool_calls=[ToolCallDelta(index=0, arguments="{}")]))
    calls = builder.end_generation(Usage(prompt_tokens=5, completion_tokens=4))
    builder.finish(length=False)
    assert [o["type"] for o in msgspec.to_builtins(response.output)] == [
        "reasoning", "message", "function_call",
    ]  # fmt: skip
    assert response.output[1].content[0].text == "Hello"  # type: ignore[union-attr]
    assert response.output[0].encrypted_content == opaque_reasoning("think")  # type: ignore[union-attr]
    assert [c.arguments for c in calls] == ["{}"]
    events = [e for e in b"".join(builder.take()).split(b"\n\n") if e]
    numbers = [msgspec.json.decode(e.split(b"data: ", 1)[1])["sequence_number"] for e in events]
    assert numbers == list(range(len(events)))
    assert response.status == "completed" and response.usage is not None
    assert response.usage.total_tokens == 9
