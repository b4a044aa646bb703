"""Anthropic's Messages API (``/v1/messages``, ``/v1/messages/count_tokens``)
with the official ``anthropic`` SDK as the client, on both engines.

This SDK's ``create`` takes no sampling arguments, so ``temperature`` goes in
``extra_body`` (it is still a field of the API).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.api.test_reasoning import THINKING_TEMPLATE
from tests.helpers import Server, queue_stats, start_server, stop_server, wait_until
from tests.vision_server import VisionServer, data_url, png

GREEDY: dict[str, Any] = {"temperature": 0}
RED, BLUE = png("red"), png("blue")
SYSTEM = "You are a helpful assistant."
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER = {
    "name": "get_weather",
    "description": "Current weather of a city.",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 30},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
}
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
def sdk(server: Server) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=server.url, api_key="unused", max_retries=0, timeout=120
    ) as client:
        yield client


def post(server: Server, path: str, body: dict[str, Any]) -> httpx.Response:
    return server.client.post(path, json=body, timeout=120)


def raw_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each SSE event, checking the ``event:``/``data:`` framing."""
    events = []
    for chunk in response.text.split("\n\n"):
        if not chunk:
            continue
        name_line, data_line = chunk.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: "), chunk
        data = json.loads(data_line.removeprefix("data: "))
        assert data["type"] == name_line.removeprefix("event: ")
        events.append((data["type"], data))
    return events


def text_of(message: anthropic.types.Message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


# --- answers ----------------------------------------------------------------------


def test_create_answers_in_anthropic_shape(sdk: anthropic.Anthropic, model: str) -> None:
    message = sdk.messages.create(
        model=model, max_tokens=30, system=SYSTEM, messages=FRANCE, extra_body=GREEDY
    )
    assert message.id.startswith("msg_") and message.type == "message"
    assert message.role == "assistant" and message.model == model
    assert [b.type for b in message.content] == ["text"]
    assert "Paris" in text_of(message)
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    usage = message.usage
    assert usage.input_tokens + (usage.cache_read_input_tokens or 0) > 10
    assert 0 < usage.output_tokens < 30
    assert usage.cache_creation_input_tokens == 0


def test_system_blocks_equal_a_system_string(sdk: anthropic.Anthropic, model: str) -> None:
    as_string = sdk.messages.create(
        model=model, max_tokens=20, system=SYSTEM, messages=FRANCE, extra_body=GREEDY
    )
    as_blocks = sdk.messages.create(
        model=model,
        max_tokens=20,
        system=[{"type": "text", "text": SYSTEM}],
        messages=FRANCE,
        extra_body=GREEDY,
    )
    assert text_of(as_blocks) == text_of(as_string)


def test_stop_sequence_is_named(sdk: anthropic.Anthropic, model: str) -> None:
    plain = sdk.messages.create(
        model=model, max_tokens=30, system=SYSTEM, messages=FRANCE, extra_body=GREEDY
    )
    answer = text_of(plain)
    assert "Paris" in answer
    stopped = sdk.messages.create(
        model=model,
        max_tokens=30,
        system=SYSTEM,
        messages=FRANCE,
        stop_sequences=["Madrid", "Paris"],
        extra_body=GREEDY,
    )
    assert stopped.stop_reason == "stop_sequence"
    assert stopped.stop_sequence == "Paris"
    assert text_of(stopped) == answer[: answer.index("Paris")]


def test_max_tokens_ends_the_answer(sdk: anthropic.Anthropic, model: str) -> None:
    message = sdk.messages.create(
        model=model,
        max_tokens=3,
        messages=[{"role": "user", "content": "Count from 1 to 50: 1, 2, 3,"}],
        extra_body=GREEDY,
    )
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


def test_stream_events_and_final_message(sdk: anthropic.Anthropic, model: str) -> None:
    with sdk.messages.stream(
        model=model, max_tokens=30, system=SYSTEM, messages=FRANCE, extra_body=GREEDY
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "Paris" in streamed
    assert text_of(final) == streamed
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    whole = sdk.messages.create(
        model=model, max_tokens=30, system=SYSTEM, messages=FRANCE, extra_body=GREEDY
    )
    assert text_of(whole) == streamed


def test_stream_framing_and_event_order(server: Server, model: str) -> None:
    body = {"model": model, "max_tokens": 30, "system": SYSTEM, "messages": FRANCE, **GREEDY}
    r = post(server, "/v1/messages", {**body, "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = raw_events(r)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert events[0][1]["message"]["content"] == []
    assert events[2][1]["content_block"] == {"type": "text", "text": ""}
    ending = events[-2][1]
    assert ending["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    text = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    assert "Paris" in text
    assert ending["usage"]["output_tokens"] >= len(names) - 6 > 0
    usage = ending["usage"]
    counted = {"model": model, "system": SYSTEM, "messages": FRANCE}
    count = post(server, "/v1/messages/count_tokens", counted).json()
    assert usage["input_tokens"] + usage["cache_read_input_tokens"] == count["input_tokens"]


# --- tools ------------------------------------------------------------------------


def test_forced_tool_use_round_trip(sdk: anthropic.Anthropic, model: str) -> None:
    called = sdk.messages.create(
        model=model,
        max_tokens=120,
        messages=ASK_WEATHER,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        extra_body=GREEDY,
    )
    assert called.stop_reason == "tool_use"
    uses = [b for b in called.content if b.type == "tool_use"]
    assert len(uses) == 1
    use = uses[0]
    assert use.name == "get_weather" and use.id
    assert isinstance(use.input, dict) and set(use.input) == {"city", "unit"}
    answered = sdk.messages.create(
        model=model,
        max_tokens=40,
        messages=[
            *ASK_WEATHER,
            {"role": "assistant", "content": [b.model_dump() for b in called.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": use.id, "content": "21 degrees"}
                ],
            },
        ],
        tools=[WEATHER],
        extra_body=GREEDY,
    )
    assert answered.stop_reason in ("end_turn", "max_tokens")
    assert text_of(answered).strip()
    assert not [b for b in answered.content if b.type == "tool_use"]


def test_streamed_tool_use(server: Server, sdk: anthropic.Anthropic, model: str) -> None:
    with sdk.messages.stream(
        model=model,
        max_tokens=120,
        messages=ASK_WEATHER,
        tools=[WEATHER],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        extra_body=GREEDY,
    ) as stream:
        kinds = {(e.type, getattr(getattr(e, "delta", None), "type", None)) for e in stream}
        final = stream.get_final_message()
    assert ("content_block_delta", "input_json_delta") in kinds
    assert final.stop_reason == "tool_use"
    use = next(b for b in final.content if b.type == "tool_use")
    assert use.name == "get_weather" and isinstance(use.input, dict) and use.input["city"]


def test_tool_results_are_counted(server: Server, model: str) -> None:
    history = [
        *ASK_WEATHER,
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"city": "Paris", "unit": "celsius"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": [{"type": "text", "text": "21 degrees"}]}]},
    ]  # fmt: skip
    base = {"model": model, "tools": [WEATHER]}
    short = post(server, "/v1/messages/count_tokens", {**base, "messages": ASK_WEATHER})
    full = post(server, "/v1/messages/count_tokens", {**base, "messages": history})
    assert short.status_code == full.status_code == 200, full.text
    assert full.json()["input_tokens"] > short.json()["input_tokens"] + 10


# --- count_tokens -----------------------------------------------------------------


def test_count_tokens_grows_and_matches_usage(sdk: anthropic.Anthropic, model: str) -> None:
    counted = sdk.messages.count_tokens(model=model, system=SYSTEM, messages=FRANCE)
    longer = sdk.messages.count_tokens(
        model=model,
        system=SYSTEM,
        messages=[{"role": "user", "content": "What is the capital of France and of Spain?"}],
    )
    with_tools = sdk.messages.count_tokens(
        model=model, system=SYSTEM, messages=FRANCE, tools=[WEATHER]
    )
    assert 10 < counted.input_tokens < longer.input_tokens < with_tools.input_tokens
    message = sdk.messages.create(
        model=model, max_tokens=5, system=SYSTEM, messages=FRANCE, extra_body=GREEDY
    )
    usage = message.usage
    assert usage.input_tokens + (usage.cache_read_input_tokens or 0) == counted.input_tokens


# --- errors -----------------------------------------------------------------------


def anthropic_error(r: httpx.Response, status: int, kind: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == kind, body
    return str(body["error"]["message"])


def test_missing_max_tokens_is_a_400_naming_it(server: Server, model: str) -> None:
    r = post(server, "/v1/messages", {"model": model, "messages": FRANCE})
    assert "max_tokens" in anthropic_error(r, 400, "invalid_request_error")


def test_unknown_model_is_a_404_in_anthropic_shape(sdk: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        sdk.messages.create(model="no-such-model", max_tokens=5, messages=FRANCE)
    assert caught.value.status_code == 404
    body = caught.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "not_found_error"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice.name"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({"tool_choice": {"type": "any"}, "tools": None}, "tool_choice"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 1.5}, "temperature"),
        ({"stop_sequences": [""]}, "stop_sequences[0]"),
        ({"messages": [{"role": "user", "content": [{"type": "document"}]}]},
         "messages[0].content[0].type"),
        ({"messages": [*FRANCE, {"role": "assistant", "content": "The capital is"}]},
         "messages[1]"),
        ({"messages": [{"role": "assistant", "content": [
            {"type": "tool_result", "tool_use_id": "x", "content": "y"}]}, *FRANCE]},
         "messages[0].content[0].type"),
        ({"thinking": {"type": "enabled", "budget_tokens": 10}}, "thinking"),
        ({"mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}]}, "mcp_servers"),
        ({"messages": [{"role": "user", "content": [{"type": "image", "source": {
            "type": "base64", "media_type": "image/png", "data": "AAAA"}}]}]},
         "messages[0].content[0]"),
    ],
)  # fmt: skip
def test_bad_input_is_a_400_naming_the_field(
    server: Server, change: dict[str, Any], named: str
) -> None:
    body = {"model": "smollm2-135m", "max_tokens": 5, "messages": FRANCE, "tools": [WEATHER]}
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    message = anthropic_error(post(server, "/v1/messages", body), 400, "invalid_request_error")
    assert named in message, message


def test_other_routes_keep_the_openai_shape(server: Server) -> None:
    r = post(server, "/v1/chat/completions", {"model": "no-such-model", "messages": FRANCE})
    assert r.status_code == 404
    assert r.json()["error"]["param"] == "model"
    assert "type" not in r.json() or r.json()["type"] != "error"


# --- thinking ---------------------------------------------------------------------


@pytest.fixture(scope="module", params=["llamacpp", "mlx"])
def thinker(
    request: pytest.FixtureRequest, server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    template = Path(tmp_path_factory.mktemp("templates")) / "thinking.jinja"
    template.write_text(THINKING_TEMPLATE)
    model_id = f"anthropic-think-{request.param}"
    r = server.load(
        model_id,
        engine=str(request.param),
        reasoning_parser="qwen3",
        chat_template_file=str(template),
    )
    assert r.status_code == 201, r.text
    yield model_id
    server.unload(model_id)


def test_thinking_comes_as_thinking_blocks(sdk: anthropic.Anthropic, thinker: str) -> None:
    message = sdk.messages.create(
        model=thinker,
        max_tokens=40,
        thinking={"type": "enabled", "budget_tokens": 30},
        messages=[{"role": "user", "content": "Is 7 a prime number?"}],
        extra_body=GREEDY,
    )
    assert message.content[0].type == "thinking"
    thinking = message.content[0].thinking
    assert thinking and "<think>" not in thinking and "</think>" not in thinking
    assert isinstance(message.content[0].signature, str)


def test_thinking_streams_as_thinking_deltas(sdk: anthropic.Anthropic, thinker: str) -> None:
    with sdk.messages.stream(
        model=thinker,
        max_tokens=20,
        thinking={"type": "enabled", "budget_tokens": 10},
        messages=[{"role": "user", "content": "Is 7 a prime number?"}],
        extra_body=GREEDY,
    ) as stream:
        deltas = [e.delta.thinking for e in stream if e.type == "content_block_delta"
                  and e.delta.type == "thinking_delta"]  # fmt: skip
        final = stream.get_final_message()
    assert deltas
    assert final.content[0].type == "thinking" and final.content[0].thinking == "".join(deltas)


def test_disabled_thinking_turns_the_template_off(sdk: anthropic.Anthropic, thinker: str) -> None:
    message = sdk.messages.create(
        model=thinker,
        max_tokens=30,
        thinking={"type": "disabled"},
        messages=FRANCE,
        extra_body=GREEDY,
    )
    assert [b.type for b in message.content] == ["text"]


def test_thinking_budget_must_be_under_max_tokens(server: Server, thinker: str) -> None:
    body = {
        "model": thinker,
        "max_tokens": 20,
        "thinking": {"type": "enabled", "budget_tokens": 20},
        "messages": FRANCE,
    }
    message = anthropic_error(post(server, "/v1/messages", body), 400, "invalid_request_error")
    assert "thinking.budget_tokens" in message


# --- access -----------------------------------------------------------------------


def test_x_api_key_guards_the_messages_routes() -> None:
    keyed = start_server(env={"BODEGA_API_KEY": "k-anthropic"})
    try:
        with anthropic.Anthropic(base_url=keyed.url, api_key="k-anthropic", max_retries=0) as ok:
            message = ok.messages.create(model="smollm2-135m", max_tokens=3, messages=FRANCE)
            assert message.usage.output_tokens > 0
        with anthropic.Anthropic(base_url=keyed.url, api_key="wrong", max_retries=0) as bad:
            with pytest.raises(anthropic.AuthenticationError) as caught:
                bad.messages.create(model="smollm2-135m", max_tokens=3, messages=FRANCE)
        body = caught.value.body
        assert caught.value.status_code == 401
        assert isinstance(body, dict) and body["type"] == "error"
        assert body["error"]["type"] == "authentication_error"
    finally:
        stop_server(keyed)


# --- cancellation -----------------------------------------------------------------


@pytest.fixture(params=["llamacpp", "mlx"])
def one_slot(server: Server, request: pytest.FixtureRequest) -> Iterator[str]:
    model_id = f"anthropic-cxl-{request.param}"
    r = server.load(model_id, engine=request.param, max_concurrency=1, queue_size=4)
    assert r.status_code == 201, r.text
    yield model_id
    server.unload(model_id)


def test_disconnect_mid_stream_stops_generation(server: Server, one_slot: str) -> None:
    def generated() -> int:
        return int(server.model_info(one_slot)["tokens_generated"])

    before = generated()
    body = {
        "model": one_slot,
        "max_tokens": 3000,
        "stream": True,
        "messages": [{"role": "user", "content": "Count from 1 to 2000: 1, 2, 3,"}],
        **GREEDY,
    }
    received = 0
    with server.client.stream("POST", "/v1/messages", json=body, timeout=120) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: ") and '"text_delta"' in line:
                received += 1
            if received == 20:
                break
    wait_until(lambda: queue_stats(server, one_slot)["running"] == 0)
    after = wait_until(lambda: (n := generated()) > before and n)
    extra = after - before - received
    assert extra <= 3, f"the handler generated {extra} tokens after the client left"


# --- images -----------------------------------------------------------------------


def image_block(png: bytes) -> dict[str, Any]:
    encoded = data_url(png).split(",", 1)[1]
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                        "data": encoded}}  # fmt: skip


def test_image_blocks_reach_a_multimodal_model(vision_server: VisionServer, tiny_vlm: str) -> None:
    server = vision_server.server
    question = {"type": "text", "text": "What is in the image?"}
    (vision_server.images / "blue.png").write_bytes(BLUE)
    by_url = {"type": "image", "source": {"type": "url", "url": f"{vision_server.site}/blue.png"}}

    def count(content: list[dict[str, Any]]) -> int:
        body = {"model": tiny_vlm, "messages": [{"role": "user", "content": content}]}
        r = post(server, "/v1/messages/count_tokens", body)
        assert r.status_code == 200, r.text
        return int(r.json()["input_tokens"])

    def answer(content: list[dict[str, Any]]) -> dict[str, Any]:
        turn = {"role": "user", "content": content}
        body = {"model": tiny_vlm, "max_tokens": 6, "messages": [turn], **GREEDY}
        r = post(server, "/v1/messages", body)
        assert r.status_code == 200, r.text
        return dict(r.json())

    # An 80x60 image is 6 image tokens plus its start and end markers.
    assert count([image_block(RED), question]) == count([question]) + 8
    red, blue = answer([image_block(RED), question]), answer([image_block(BLUE), question])
    assert red["content"] != blue["content"]
    assert answer([by_url, question])["content"] == blue["content"]
    bad = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                       "data": "bm90IGFuIGltYWdl"}}  # fmt: skip
    body = {"model": tiny_vlm, "max_tokens": 6, "messages": [FRANCE[0], {"role": "assistant",
            "content": "Paris."}, {"role": "user", "content": [question, bad]}]}  # fmt: skip
    message = anthropic_error(post(server, "/v1/messages", body), 400, "invalid_request_error")
    assert "messages[2].content[1].source" in message, message
