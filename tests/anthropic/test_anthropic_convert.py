"""Anthropic requests -> OpenAI chat requests, error fields, and the stream
events of a generation's frames (pure Python, no server)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import msgspec
import pytest

from bodega.anthropic.convert import chat_request
from bodega.anthropic.requests import CountTokensRequest, MessagesRequest
from bodega.anthropic.stream import stream_events
from bodega.errors import HandlerFailed, InvalidRequest
from ipc.messages import Delta, Finished, ToolCallDelta, Usage


def convert(**body: Any) -> Any:
    body.setdefault("model", "m")
    body.setdefault("max_tokens", 50)
    request = msgspec.convert(body, MessagesRequest)
    return chat_request(request, has_reasoning_parser=True)


def test_turns_become_openai_messages() -> None:
    request, _ = convert(
        system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Call the tool.", "signature": ""},
                    {"type": "tool_use", "id": "t1", "name": "w", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "rain",
                     "is_error": True},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
        tools=[{"name": "w", "input_schema": {"type": "object"}}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        stop_sequences=["END"],
        temperature=0.2,
    )  # fmt: skip
    roles = [m.role for m in request.messages]
    assert roles == ["system", "user", "assistant", "tool", "user"]
    assert request.messages[0].content == "Be brief.\nBe kind."
    assistant = request.messages[2]
    assert assistant.reasoning_content == "Call the tool."
    assert assistant.tool_calls[0].id == "t1"
    assert json.loads(assistant.tool_calls[0].function.arguments) == {"city": "Paris"}
    assert request.messages[3].tool_call_id == "t1"
    assert request.messages[3].content == "Error: rain"
    assert request.messages[4].content[0].text == "And tomorrow?"
    assert request.tool_choice == "required" and request.parallel_tool_calls is False
    assert request.stop == ["END"] and request.temperature == 0.2 and request.max_tokens == 50


def test_images_become_image_url_parts() -> None:
    request, where = convert(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": "QUJD"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                ],
            }
        ]
    )  # fmt: skip
    parts = request.messages[0].content
    assert [p.type for p in parts] == ["text", "image_url", "image_url"]
    assert parts[1].image_url.url == "data:image/png;base64,QUJD"
    assert parts[2].image_url.url == "https://x/y.png"
    assert (
        where.anthropic("messages[0].content[2].image_url.url") == "messages[0].content[2].source"
    )


def test_error_fields_name_the_anthropic_request() -> None:
    _, where = convert(
        system="S",
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "w",
                                               "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "a", "content": "ok"},
                {"type": "text", "text": "then"},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
            ]},
        ],
    )  # fmt: skip
    # OpenAI: 0 system, 1 user, 2 assistant, 3 tool, 4 user [text, image]
    assert where.anthropic("messages[0]") == "system"
    assert where.anthropic("messages[3].tool_call_id") == "messages[2].content[0].tool_use_id"
    assert where.anthropic("messages[4].content[1].type") == "messages[2].content[2].type"
    assert where.anthropic("messages") == "messages"
    assert where.anthropic("stop") == "stop_sequences"
    assert where.anthropic("tool_choice.function.name") == "tool_choice.name"


@pytest.mark.parametrize(
    ("thinking", "extra", "effort"),
    [
        (None, {}, None),
        ({"type": "disabled"}, {}, "none"),
        ({"type": "enabled", "budget_tokens": 100}, {"max_tokens": 5000}, "low"),
        ({"type": "enabled", "budget_tokens": 8000}, {"max_tokens": 9000}, "medium"),
        ({"type": "enabled", "budget_tokens": 20000}, {"max_tokens": 30000}, "high"),
        ({"type": "enabled", "budget_tokens": 100}, {"max_tokens": 500,
                                                      "output_config": {"effort": "max"}}, "max"),
        ({"type": "adaptive"}, {}, "medium"),
    ],
)  # fmt: skip
def test_thinking_sets_the_reasoning_effort(
    thinking: dict[str, Any] | None, extra: dict[str, Any], effort: str | None
) -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "Hi"}], **extra}
    if thinking is not None:
        body["thinking"] = thinking
    request, _ = convert(**body)
    assert request.reasoning_effort == effort


def test_thinking_needs_a_reasoning_parser() -> None:
    request = msgspec.convert(
        {"model": "m", "max_tokens": 50, "thinking": {"type": "enabled", "budget_tokens": 10},
         "messages": [{"role": "user", "content": "Hi"}]},
        MessagesRequest,
    )  # fmt: skip
    with pytest.raises(InvalidRequest) as caught:
        chat_request(request, has_reasoning_parser=False)
    assert caught.value.param == "thinking"


def test_a_count_is_one_greedy_token() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
    request, _ = chat_request(msgspec.convert(body, CountTokensRequest), has_reasoning_parser=False)
    assert request.max_tokens == 1 and request.temperature == 0.0


def test_output_format_becomes_a_json_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    request, _ = convert(
        messages=[{"role": "user", "content": "Hi"}],
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    assert request.response_format.type == "json_schema"
    assert request.response_format.json_schema.schema == schema


# --- stream events ----------------------------------------------------------------


async def frames_of(
    items: list[Delta | Finished | Exception],
) -> AsyncGenerator[Delta | Finished, None]:
    for item in items:
        if isinstance(item, Exception):
            raise item
        yield item


async def events_of(items: list[Delta | Finished | Exception]) -> list[dict[str, Any]]:
    frames = frames_of(items)
    first = await frames.__anext__()
    chunks = [c async for c in stream_events(first, frames, model="m", show_thinking=True)]
    events = []
    for chunk in b"".join(chunks).decode().split("\n\n"):
        if chunk:
            name, data = chunk.split("\n")
            events.append(json.loads(data.removeprefix("data: ")))
            assert events[-1]["type"] == name.removeprefix("event: ")
    return events


async def test_blocks_follow_the_kind_of_output() -> None:
    events = await events_of(
        [
            Delta(req_id=1, reasoning="Hmm."),
            Delta(req_id=1, text="Calling."),
            Delta(req_id=1, tool_calls=[ToolCallDelta(index=0, id="c1", name="w")]),
            Delta(req_id=1, tool_calls=[ToolCallDelta(index=0, arguments='{"a":')]),
            Delta(req_id=1, tool_calls=[ToolCallDelta(index=0, arguments=" 1}")]),
            Finished(req_id=1, reason="tool_calls", usage=Usage(10, 5, 4)),
        ]
    )
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert starts == [
        {"type": "thinking", "thinking": "", "signature": ""},
        {"type": "text", "text": ""},
        {"type": "tool_use", "id": "c1", "name": "w", "input": {}},
    ]
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert [d["type"] for d in deltas] == [
        "thinking_delta", "text_delta", "input_json_delta", "input_json_delta"
    ]  # fmt: skip
    assert [e["index"] for e in events if e["type"] == "content_block_stop"] == [0, 1, 2]
    ending = next(e for e in events if e["type"] == "message_delta")
    assert ending["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert ending["usage"]["input_tokens"] == 6
    assert ending["usage"]["cache_read_input_tokens"] == 4
    assert events[-1]["type"] == "message_stop"


async def test_a_stop_sequence_ends_the_message() -> None:
    events = await events_of(
        [Delta(req_id=1, text="Hi"), Finished(req_id=1, reason="stop", stop_sequence="##")]
    )
    ending = next(e for e in events if e["type"] == "message_delta")
    assert ending["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "##"}


async def test_a_failure_mid_stream_is_an_error_event() -> None:
    events = await events_of([Delta(req_id=1, text="Hi"), HandlerFailed("boom")])
    assert events[-1]["type"] == "error"
    assert events[-1]["error"] == {"type": "api_error", "message": "boom"}
    assert "message_stop" not in [e["type"] for e in events]
