"""``/v1/responses`` with the official openai SDK as the client: answers, typed
stream events, stored conversations, function calling, structured output,
reasoning items, truncation, errors, background responses and cancellation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.api.test_reasoning import THINKING_TEMPLATE
from tests.helpers import Server, long_completion, queue_stats, sse_events, wait_until
from tests.vision_server import TINY_VLM, VisionServer, data_url, png

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather of a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 30}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
PERSON = {
    "type": "json_schema",
    "name": "person",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    },
}
STREAM_EVENTS = {
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
    "response.incomplete",
}


def sdk(server: Server, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0, **options)


def test_create_answers_and_is_stored(server: Server, model: str) -> None:
    client = sdk(server)
    response = client.responses.create(
        model=model, input="Say hello.", max_output_tokens=12, temperature=0
    )
    assert response.id.startswith("resp_")
    assert response.status in ("completed", "incomplete")
    assert response.output[0].type == "message"
    assert response.output_text
    assert response.usage is not None
    assert response.usage.input_tokens > 5
    assert 0 < response.usage.output_tokens <= 12
    stored = client.responses.retrieve(response.id)
    assert stored.output_text == response.output_text
    assert stored.status == response.status


def test_stream_sends_the_typed_events_in_order(server: Server, model: str) -> None:
    client = sdk(server)
    events = list(
        client.responses.create(
            model=model,
            input="Count from 1 to 10, separated by commas.",
            max_output_tokens=40,
            temperature=0,
            stream=True,
        )
    )
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:-1] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert set(kinds) <= STREAM_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert deltas and final.output_text == deltas
    assert events[-2].item.id == final.output[0].id  # type: ignore[union-attr]
    assert client.responses.retrieve(final.id).output_text == deltas


def test_the_sdk_stream_helper_assembles_the_response(server: Server) -> None:
    client = sdk(server)
    with client.responses.stream(
        model="smollm2-135m", input="Say hi.", max_output_tokens=200, temperature=0
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed"
    assert final.output_text == "".join(deltas) and deltas


def test_previous_response_id_continues_the_conversation(server: Server) -> None:
    client = sdk(server)
    first = client.responses.create(
        model="smollm2-135m",
        instructions="Answer briefly.",
        input="My name is Ada.",
        max_output_tokens=10,
        temperature=0,
    )
    second = client.responses.create(
        model="smollm2-135m",
        previous_response_id=first.id,
        input="What is my name?",
        max_output_tokens=10,
        temperature=0,
    )
    assert second.previous_response_id == first.id
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    items = client.responses.input_items.list(second.id, order="asc").data
    assert [i.type for i in items] == ["message", "message", "message"]
    assert [i.role for i in items] == ["user", "assistant", "user"]  # type: ignore[union-attr]
    assert items[1].id == first.output[0].id
    newest = client.responses.input_items.list(second.id, limit=1)
    assert newest.data[0].id == items[2].id and newest.has_more
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="smollm2-135m", previous_response_id="resp_nope", input="Hi")
    assert missing.value.body["param"] == "previous_response_id"  # type: ignore[index]


def test_function_call_round_trip(server: Server, model: str) -> None:
    client = sdk(server)
    asked = client.responses.create(
        model=model,
        input="What is the weather in Paris?",
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="required",
        parallel_tool_calls=False,
        max_output_tokens=60,
        temperature=0,
    )
    calls = [o for o in asked.output if o.type == "function_call"]
    assert len(calls) == 1, asked.output
    call = calls[0]
    assert call.name == "get_weather" and call.call_id.startswith("call_")
    jsonschema.validate(json.loads(call.arguments), WEATHER["parameters"])
    answered = client.responses.create(
        model=model,
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}],
        tools=[WEATHER],  # type: ignore[list-item]
        max_output_tokens=30,
        temperature=0,
    )
    assert answered.output[0].type == "message" and answered.output_text
    # The same turn without the store: the client sends the whole conversation.
    stateless = client.responses.create(
        model=model,
        store=False,
        input=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
        ],
        tools=[WEATHER],  # type: ignore[list-item]
        max_output_tokens=30,
        temperature=0,
    )
    # The same prompt reached the model.
    assert stateless.usage.input_tokens == answered.usage.input_tokens  # type: ignore[union-attr]
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(stateless.id)


def test_streamed_function_call_arguments(server: Server) -> None:
    events = list(
        sdk(server).responses.create(
            model="smollm2-135m",
            input="What is the weather in Paris?",
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice="required",
            parallel_tool_calls=False,
            max_output_tokens=60,
            temperature=0,
            stream=True,
        )
    )
    added = [e for e in events if e.type == "response.output_item.added"]
    assert added[0].item.type == "function_call"  # type: ignore[union-attr]
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and deltas
    assert done[0].arguments == "".join(deltas)  # type: ignore[union-attr]
    jsonschema.validate(json.loads(done[0].arguments), WEATHER["parameters"])  # type: ignore[union-attr]
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output[0].arguments == done[0].arguments


def test_structured_output_follows_the_schema(server: Server) -> None:
    response = sdk(server).responses.create(
        model="smollm2-135m",
        input="Describe a person.",
        text={"format": PERSON},  # type: ignore[typeddict-item]
        max_output_tokens=60,
        temperature=0,
    )
    jsonschema.validate(json.loads(response.output_text), PERSON["schema"])
    assert response.text.format.type == "json_schema"  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def thinker(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    template = Path(tmp_path_factory.mktemp("templates")) / "thinking.jinja"
    template.write_text(THINKING_TEMPLATE)
    r = server.load("resp-think", reasoning_parser="qwen3", chat_template_file=str(template))
    assert r.status_code == 201, r.text
    yield "resp-think"
    server.unload("resp-think")


def test_reasoning_comes_back_as_reasoning_items(server: Server, thinker: str) -> None:
    client = sdk(server)
    response = client.responses.create(
        model=thinker,
        input="Is 7 a prime number?",
        include=["reasoning.encrypted_content"],
        max_output_tokens=40,
        temperature=0,
        store=False,
    )
    reasoning = response.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.content and reasoning.content[0].text
    assert "<think>" not in reasoning.content[0].text
    assert reasoning.encrypted_content
    streamed = list(
        client.responses.create(
            model=thinker, input="Is 7 a prime number?", max_output_tokens=20, stream=True
        )
    )
    kinds = [e.type for e in streamed]
    assert kinds[2] == "response.output_item.added"
    assert streamed[2].item.type == "reasoning"  # type: ignore[union-attr]
    text = "".join(e.delta for e in streamed if e.type == "response.reasoning_text.delta")
    assert text and "response.reasoning_text.done" in kinds
    assert streamed[-1].response.output[0].content[0].text == text  # type: ignore[union-attr]
    # A stateless client gives the reasoning back opaquely.
    item = {"type": "reasoning", "id": reasoning.id, "summary": [],
            "encrypted_content": reasoning.encrypted_content}  # fmt: skip
    again = client.responses.create(
        model=thinker,
        input=[
            {"role": "user", "content": "Is 7 a prime number?"},
            item,
            {"role": "user", "content": "Are you sure?"},
        ],
        max_output_tokens=10,
        store=False,
    )
    assert again.status in ("completed", "incomplete")
    forged = {**item, "encrypted_content": "bm90IG91cnM="}
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model=thinker, input=[forged], max_output_tokens=5)
    assert bad.value.body["param"] == "input[0].encrypted_content"  # type: ignore[index]


@pytest.fixture(scope="module")
def short_context(server: Server) -> Iterator[str]:
    r = server.load("resp-short", context_length=256, max_concurrency=1)
    assert r.status_code == 201, r.text
    yield "resp-short"
    server.unload("resp-short")


def test_truncation_auto_drops_the_oldest_turns(server: Server, short_context: str) -> None:
    client = sdk(server)
    filler = "The quick brown fox jumps over the lazy dog. " * 8
    turns: list[dict[str, str]] = []
    for i in range(4):
        turns += [{"role": "user", "content": f"Note {i}: {filler}"},
                  {"role": "assistant", "content": "Noted."}]  # fmt: skip
    conversation = [*turns, {"role": "user", "content": "Done?"}]
    with pytest.raises(openai.BadRequestError) as overflow:
        client.responses.create(model=short_context, input=conversation, max_output_tokens=5)
    assert overflow.value.code == "context_length_exceeded"
    response = client.responses.create(
        model=short_context, input=conversation, truncation="auto", max_output_tokens=5
    )
    assert response.truncation == "auto" and response.status in ("completed", "incomplete")
    kept = client.responses.input_items.list(response.id, order="asc", limit=100).data
    assert 1 <= len(kept) < len(conversation)
    assert kept[-1].content[0].text == "Done?"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "name": "bad name!"}]}, "tools[0].name"),
        ({"tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
        ({"include": ["file_search_call.nonsense"]}, "include[0]"),
        ({"background": True, "store": False}, "background"),
        ({"background": True, "stream": True}, "stream"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
        ({"text": {"verbosity": "high"}}, "text.verbosity"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"input": []}, "input"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
         "input[0].content[0].image_url"),
    ],
)  # fmt: skip
def test_bad_requests_name_the_field(server: Server, body: dict[str, Any], param: str) -> None:
    request = {"model": "smollm2-135m", "input": "Hi", **body}
    r = server.client.post("/v1/responses", json=request)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param, r.json()


def test_unknown_ids_and_models_are_404(server: Server) -> None:
    client = sdk(server)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="Hi")
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_missing")
    response = client.responses.create(model="smollm2-135m", input="Hi", max_output_tokens=2)
    assert client.responses.delete(response.id) is None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(response.id)


def test_image_input_reaches_a_multimodal_model(vision_server: VisionServer, tiny_vlm: str) -> None:
    client = sdk(vision_server.server)

    def ask(color: str) -> Any:
        content = [{"type": "input_image", "image_url": data_url(png(color))},
                   {"type": "input_text", "text": "What is in the image?"}]  # fmt: skip
        return client.responses.create(
            model=TINY_VLM,
            input=[{"role": "user", "content": content}],
            max_output_tokens=4,
            temperature=0,
        )

    red, blue = ask("red"), ask("blue")
    assert red.usage.input_tokens == blue.usage.input_tokens > 8
    text_only = client.responses.create(
        model=TINY_VLM, input="What is in the image?", max_output_tokens=4, temperature=0
    )
    assert red.usage.input_tokens > text_only.usage.input_tokens


@pytest.fixture
def one_slot(server: Server) -> Iterator[str]:
    r = server.load("resp-slot", max_concurrency=1, queue_size=4)
    assert r.status_code == 201, r.text
    yield "resp-slot"
    server.unload("resp-slot")


def hold(server: Server, model: str) -> tuple[Any, Iterator[Any]]:
    """A long completion stream holding the model's one slot until closed (its
    events iterator must stay referenced: collecting it closes the stream)."""
    holder = server.client.stream("POST", "/v1/completions", json=long_completion(model))
    events = sse_events(holder.__enter__())
    next(events)
    return holder, events


def test_background_response_runs_detached_and_cancels(server: Server, one_slot: str) -> None:
    client = sdk(server)
    holder, _events = hold(server, one_slot)
    try:
        queued = client.responses.create(
            model=one_slot, input="Hi", background=True, max_output_tokens=5
        )
        assert queued.status == "queued" and queued.background
        wait_until(lambda: queue_stats(server, one_slot)["queued"] == 1)
        assert client.responses.retrieve(queued.id).status == "in_progress"
        cancelled = client.responses.cancel(queued.id)
        assert cancelled.status == "cancelled"
        wait_until(lambda: queue_stats(server, one_slot)["queued"] == 0, timeout=5)
    finally:
        holder.__exit__(None, None, None)
    done = client.responses.create(model=one_slot, input="Hi", background=True, max_output_tokens=5)
    finished = wait_until(
        lambda: (
            (r := client.responses.retrieve(done.id)).status in ("completed", "incomplete") and r
        ),
        timeout=60,
    )
    assert finished.output_text
    assert client.responses.cancel(done.id).status == finished.status  # already over
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(
            client.responses.create(model=one_slot, input="Hi", max_output_tokens=2).id
        )


def test_disconnect_mid_stream_stops_generation(server: Server, one_slot: str) -> None:
    before = int(server.model_info(one_slot)["tokens_generated"])
    body = {"model": one_slot, "input": "Count from 1 to 500, separated by commas.",
            "max_output_tokens": 1000, "temperature": 0, "stream": True}  # fmt: skip
    received = 0
    with server.client.stream("POST", "/v1/responses", json=body) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and '"response.output_text.delta"' in line:
                received += 1
            if received == 20:
                break
    wait_until(lambda: queue_stats(server, one_slot)["running"] == 0)
    after = wait_until(
        lambda: (n := int(server.model_info(one_slot)["tokens_generated"])) > before and n
    )
    assert after - before - received <= 3, "the handler went on after the client left"
    assert httpx.post(f"{server.url}/v1/responses", json={**body, "stream": False,
                      "max_output_tokens": 2}, timeout=30).status_code == 200  # fmt: skip
