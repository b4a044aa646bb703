"""Multimodal chat over HTTP on llama.cpp with a projector: a tiny llama text
GGUF and a tiny gemma3 projector GGUF, both written in the test with the
``gguf`` package (tests/handlers/vision/tiny_mmproj.py). Random weights: the
tests check shapes, token counts, the prompt cache and that the images reach
the model (their first token's log-probability moves with the image)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers import sse_events, wait_until
from tests.vision_server import VisionServer, data_url, image_part, png

RED, BLUE = png("red"), png("blue")
IMAGE_TOKENS = 16  # the tiny projector's 64x64 image in 8x8 patches, pooled 2x2


def chat(model: str, *turns: list[Any] | str, **extra: Any) -> dict[str, Any]:
    """A greedy chat body of user turns with logprobs."""
    messages = [{"role": "user", "content": t} for t in turns]
    body = {"model": model, "messages": messages, "temperature": 0, "max_tokens": 4}
    return {**body, "logprobs": True, **extra}


def ask(image: bytes) -> list[Any]:
    return [{"type": "text", "text": "What is this?"}, image_part(data_url(image))]


def post(vs: VisionServer, body: dict[str, Any]) -> dict[str, Any]:
    r = vs.server.client.post("/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return dict(r.json())


def first_logprob(answer: dict[str, Any]) -> float:
    return float(answer["choices"][0]["logprobs"]["content"][0]["logprob"])


def test_image_tokens_count_and_images_reach_the_model(
    vision_server: VisionServer, tiny_gguf_vlm: str
) -> None:
    text_only = post(vision_server, chat(tiny_gguf_vlm, "What is this?"))
    red = post(vision_server, chat(tiny_gguf_vlm, ask(RED)))
    again = post(vision_server, chat(tiny_gguf_vlm, ask(RED)))
    blue = post(vision_server, chat(tiny_gguf_vlm, ask(BLUE)))
    assert red["object"] == "chat.completion" and red["model"] == tiny_gguf_vlm
    assert red["usage"]["completion_tokens"] == 4
    assert red["usage"]["prompt_tokens"] >= text_only["usage"]["prompt_tokens"] + IMAGE_TOKENS
    assert first_logprob(red) == first_logprob(again)
    assert first_logprob(red) != first_logprob(blue)


def test_streaming_with_an_image(vision_server: VisionServer, tiny_gguf_vlm: str) -> None:
    body = chat(tiny_gguf_vlm, ask(RED), stream=True, stream_options={"include_usage": True})
    with vision_server.server.client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        events = list(sse_events(r))
    assert events[-1] == "[DONE]"
    pieces = [e["choices"][0] for e in events[:-1] if e["choices"]]
    assert sum(len(p["logprobs"]["content"]) for p in pieces if p.get("logprobs")) == 4
    assert pieces[-1]["finish_reason"] == "length"
    assert events[-2]["usage"]["completion_tokens"] == 4


def test_two_images_and_an_earlier_turn(vision_server: VisionServer, tiny_gguf_vlm: str) -> None:
    one = post(vision_server, chat(tiny_gguf_vlm, ask(RED)))
    two = post(vision_server, chat(tiny_gguf_vlm, [*ask(RED), image_part(data_url(BLUE))]))
    assert two["usage"]["prompt_tokens"] >= one["usage"]["prompt_tokens"] + IMAGE_TOKENS

    def later(image: bytes) -> dict[str, Any]:
        body = chat(tiny_gguf_vlm, ask(image), "And now?")
        body["messages"].insert(1, {"role": "assistant", "content": "A colour."})
        return post(vision_server, body)

    red, blue = later(RED), later(BLUE)
    assert red["usage"]["prompt_tokens"] == blue["usage"]["prompt_tokens"]
    assert red["usage"]["prompt_tokens"] > one["usage"]["prompt_tokens"]
    assert first_logprob(red) != first_logprob(blue)


def test_prompt_cache_keys_on_the_image(
    vision_server: VisionServer, tiny_gguf_vlm: str, gguf_vlm_files: tuple[Path, Path]
) -> None:
    body = chat(tiny_gguf_vlm, [{"type": "text", "text": "Cache check."}, *ask(RED)])
    first = post(vision_server, body)
    same = post(vision_server, body)
    prompt = first["usage"]["prompt_tokens"]
    assert same["usage"]["prompt_tokens_details"]["cached_tokens"] == prompt - 1
    blue_body = chat(tiny_gguf_vlm, [{"type": "text", "text": "Cache check."}, *ask(BLUE)])
    other = post(vision_server, blue_body)
    assert other["usage"]["prompt_tokens_details"]["cached_tokens"] < prompt - IMAGE_TOKENS
    client = vision_server.server.client
    spec = {
        "model_path": str(gguf_vlm_files[0]),
        "model_id": "gguf-uncached",
        "model_type": "multimodal",
        "mmproj_path": str(gguf_vlm_files[1]),
        "prompt_cache_size": 0,
        "n_threads": 1,
    }
    assert client.post("/v1/admin/load-model", json=spec, timeout=120).status_code == 201
    try:
        cold = post(vision_server, {**blue_body, "model": "gguf-uncached"})
    finally:
        client.delete("/v1/admin/unload-model/gguf-uncached")
    assert abs(first_logprob(other) - first_logprob(cold)) < 1e-4


def test_text_requests_grammar_and_n_on_a_multimodal_gguf(
    vision_server: VisionServer, tiny_gguf_vlm: str
) -> None:
    plain = post(vision_server, chat(tiny_gguf_vlm, "Hello"))
    assert plain["usage"]["prompt_tokens"] > 0
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    body = chat(
        tiny_gguf_vlm,
        ask(RED),
        max_tokens=30,
        n=2,
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
    )
    answer = post(vision_server, body)
    assert len(answer["choices"]) == 2
    for choice in answer["choices"]:
        assert isinstance(json.loads(choice["message"]["content"])["ok"], bool)


def test_min_tokens_with_an_image_is_refused(
    vision_server: VisionServer, tiny_gguf_vlm: str
) -> None:
    body = chat(tiny_gguf_vlm, ask(RED), min_tokens=2)
    r = vision_server.server.client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "min_tokens"


def test_a_client_that_leaves_stops_the_generation(
    vision_server: VisionServer, tiny_gguf_vlm: str
) -> None:
    server = vision_server.server

    def generated() -> int:
        return int(server.model_info(tiny_gguf_vlm)["tokens_generated"])

    def running() -> int:
        stats = server.client.get("/v1/queue/stats").json()
        return int(stats["queue_stats"]["models"][tiny_gguf_vlm]["running"])

    before = generated()
    body = chat(tiny_gguf_vlm, ask(RED), max_tokens=1900, ignore_eos=True, stream=True)
    with server.client.stream("POST", "/v1/chat/completions", json=body) as r:
        for n, _ in enumerate(sse_events(r)):
            if n == 10:
                break
    wait_until(lambda: running() == 0)
    after = wait_until(lambda: (n := generated()) > before and n)
    assert after - before < 1000, "the handler went on generating after the client left"


def test_the_projector_is_found_or_named(
    vision_server: VisionServer, gguf_vlm_files: tuple[Path, Path], tmp_path: Path
) -> None:
    client = vision_server.server.client
    alone = tmp_path / "alone.gguf"
    alone.write_bytes(gguf_vlm_files[0].read_bytes())  # no projector beside it
    spec = {"model_path": str(alone), "model_id": "no-projector", "model_type": "multimodal"}
    r = client.post("/v1/admin/load-model", json=spec, timeout=120)
    assert r.status_code == 400, r.text
    assert "mmproj_path" in r.json()["error"]["message"]
    named = {**spec, "model_id": "named-projector", "mmproj_path": str(gguf_vlm_files[1])}
    r = client.post("/v1/admin/load-model", json=named, timeout=120)
    assert r.status_code == 201, r.text
    try:
        answer = post(vision_server, chat("named-projector", ask(RED)))
        assert answer["usage"]["prompt_tokens"] > IMAGE_TOKENS
    finally:
        client.delete("/v1/admin/unload-model/named-projector")


def test_image_tokens_count_against_the_context(
    vision_server: VisionServer, gguf_vlm_files: tuple[Path, Path]
) -> None:
    client = vision_server.server.client
    spec = {
        "model_path": str(gguf_vlm_files[0]),
        "model_id": "gguf-short",
        "model_type": "multimodal",
        "context_length": 40,
        "n_threads": 1,
    }
    assert client.post("/v1/admin/load-model", json=spec, timeout=120).status_code == 201
    try:
        assert post(vision_server, chat("gguf-short", "Hi"))["usage"]["prompt_tokens"] < 40
        r = client.post("/v1/chat/completions", json=chat("gguf-short", ask(RED)))
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "context_length_exceeded"
    finally:
        client.delete("/v1/admin/unload-model/gguf-short")


def test_forced_tool_call_with_an_image(vision_server: VisionServer, tiny_gguf_vlm: str) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "describe",
            "parameters": {
                "type": "object",
                "properties": {"colour": {"type": "string", "enum": ["red", "blue"]}},
                "required": ["colour"],
            },
        },
    }
    body = chat(
        tiny_gguf_vlm,
        ask(RED),
        max_tokens=200,
        tools=[tool],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    answer = post(vision_server, body)
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls", choice
    call = choice["message"]["tool_calls"][0]["function"]
    assert call["name"] == "describe"
    assert json.loads(call["arguments"])["colour"] in ("red", "blue")
