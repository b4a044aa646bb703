"""Multimodal chat over HTTP on mlx-vlm: a tiny, randomly initialised Qwen2-VL
built in the test, loaded through load-model. Random weights say nothing
about quality: the tests check shapes, token counts, determinism and that
images really reach the model (different images, different greedy answers)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx

from tests.helpers import sse_events, wait_until
from tests.vision_server import VisionServer, data_url, image_part, png

RED, BLUE, GREEN = png("red"), png("blue"), png((0, 200, 0))


def chat(model: str, *contents: Any, nonce: str | None = None, **extra: Any) -> dict[str, Any]:
    """A greedy chat body of user turns; ``nonce`` makes the prompt cache cold."""
    messages: list[dict[str, Any]] = []
    if nonce:
        messages.append({"role": "system", "content": f"Session {nonce}."})
    messages += [{"role": "user", "content": list(c)} for c in contents]
    return {"model": model, "messages": messages, "temperature": 0, "max_tokens": 6, **extra}


def post(vs: VisionServer, body: dict[str, Any]) -> dict[str, Any]:
    r = vs.server.client.post("/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return dict(r.json())


def text(answer: dict[str, Any]) -> str:
    return str(answer["choices"][0]["message"]["content"])


def first_logprob(answer: dict[str, Any]) -> float:
    return float(answer["choices"][0]["logprobs"]["content"][0]["logprob"])


def ask(url: str) -> list[Any]:
    return [{"type": "text", "text": "What is in the image?"}, image_part(url)]


def test_an_image_answer_has_the_chat_shape_and_counts_image_tokens(
    vision_server: VisionServer, tiny_vlm: str
) -> None:
    plain = post(vision_server, chat(tiny_vlm, [{"type": "text", "text": "What is in the image?"}]))
    answer = post(vision_server, chat(tiny_vlm, ask(data_url(RED))))
    assert answer["object"] == "chat.completion" and answer["model"] == tiny_vlm
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == 6
    # An 80x60 image is 6 image tokens plus its start and end markers.
    assert answer["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"] + 8


def test_images_reach_the_model(vision_server: VisionServer, tiny_vlm: str) -> None:
    red = post(vision_server, chat(tiny_vlm, ask(data_url(RED))))
    again = post(vision_server, chat(tiny_vlm, ask(data_url(RED))))
    blue = post(vision_server, chat(tiny_vlm, ask(data_url(BLUE))))
    assert text(red) == text(again)
    assert text(red) != text(blue)


def test_url_and_data_url_give_the_same_answer(vision_server: VisionServer, tiny_vlm: str) -> None:
    (vision_server.images / "green.png").write_bytes(GREEN)
    by_url = post(vision_server, chat(tiny_vlm, ask(f"{vision_server.site}/green.png")))
    by_data = post(vision_server, chat(tiny_vlm, ask(data_url(GREEN))))
    assert text(by_url) == text(by_data)


def test_streaming_an_image_request(vision_server: VisionServer, tiny_vlm: str) -> None:
    body = chat(tiny_vlm, ask(data_url(RED)), stream=True, stream_options={"include_usage": True})
    with vision_server.server.client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        events = list(sse_events(r))
    assert events[-1] == "[DONE]"
    streamed = "".join(
        e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"]
    )
    assert streamed == text(post(vision_server, chat(tiny_vlm, ask(data_url(RED)))))
    assert events[-2]["usage"]["completion_tokens"] == 6


def test_two_images_in_one_message_in_order(vision_server: VisionServer, tiny_vlm: str) -> None:
    red_blue = [image_part(data_url(RED)), {"type": "text", "text": "and"}]
    one = post(vision_server, chat(tiny_vlm, red_blue))
    red_blue.append(image_part(data_url(BLUE)))
    blue_red = [red_blue[2], red_blue[1], red_blue[0]]
    first = post(vision_server, chat(tiny_vlm, red_blue, logprobs=True))
    swapped = post(vision_server, chat(tiny_vlm, blue_red, logprobs=True))
    assert first["usage"]["prompt_tokens"] == one["usage"]["prompt_tokens"] + 8
    assert first["usage"]["prompt_tokens"] == swapped["usage"]["prompt_tokens"]
    # The order reaches the model: the first token's distribution differs.
    assert first_logprob(first) != first_logprob(swapped)


def test_an_image_in_an_earlier_turn_stays_in_the_prompt(
    vision_server: VisionServer, tiny_vlm: str
) -> None:
    def conversation(image: bytes) -> dict[str, Any]:
        body = chat(tiny_vlm, ask(data_url(image)))
        body["messages"] += [
            {"role": "assistant", "content": "A colour."},
            {"role": "user", "content": "Which one?"},
        ]
        return body

    red, blue = post(vision_server, conversation(RED)), post(vision_server, conversation(BLUE))
    assert red["usage"]["prompt_tokens"] == blue["usage"]["prompt_tokens"]
    assert text(red) != text(blue)


def test_the_prompt_cache_never_reuses_another_images_tokens(
    vision_server: VisionServer, tiny_vlm: str
) -> None:
    nonce = secrets.token_hex(4)
    first = post(vision_server, chat(tiny_vlm, ask(data_url(RED)), nonce=nonce))
    same = post(vision_server, chat(tiny_vlm, ask(data_url(RED)), nonce=nonce))
    other = post(vision_server, chat(tiny_vlm, ask(data_url(BLUE)), nonce=nonce, logprobs=True))
    prompt = first["usage"]["prompt_tokens"]
    assert same["usage"]["prompt_tokens_details"]["cached_tokens"] == prompt - 1
    reused = other["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert 0 < reused < prompt - 8  # the text before the image only
    # The same request on a copy of the model without a prompt cache.
    client = vision_server.server.client
    info = client.get("/v1/admin/loaded-models").json()["data"]
    path = next(m["model_path"] for m in info if m["id"] == tiny_vlm)
    spec = {"model_path": path, "model_id": "uncached", "model_type": "multimodal"}
    r = client.post("/v1/admin/load-model", json={**spec, "prompt_cache_size": 0}, timeout=120)
    assert r.status_code == 201, r.text
    try:
        body = chat("uncached", ask(data_url(BLUE)), nonce=nonce, logprobs=True)
        cold = post(vision_server, body)
    finally:
        client.delete("/v1/admin/unload-model/uncached")
    assert cold["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert text(other) == text(cold)
    assert abs(first_logprob(other) - first_logprob(cold)) < 1e-3


def test_requests_with_different_images_decode_together(
    vision_server: VisionServer, tiny_vlm: str
) -> None:
    """Two slots: two image requests sent at once share the batch (each row at
    its own M-RoPE offset) and answer as each does alone."""
    from concurrent.futures import ThreadPoolExecutor

    bodies = [
        chat(tiny_vlm, ask(data_url(image)), nonce=secrets.token_hex(4), max_tokens=24)
        for image in (RED, BLUE)
    ]
    alone = [text(post(vision_server, body)) for body in bodies]
    with ThreadPoolExecutor(2) as pool:
        together = [text(a) for a in pool.map(lambda b: post(vision_server, b), bodies)]
    assert together == alone
    assert alone[0] != alone[1]


def test_logprobs_and_n_on_an_image_request(vision_server: VisionServer, tiny_vlm: str) -> None:
    body = chat(tiny_vlm, ask(data_url(RED)), logprobs=True, top_logprobs=2, n=2, seed=1)
    answer = post(vision_server, {**body, "temperature": 1.0})
    assert len(answer["choices"]) == 2
    for choice in answer["choices"]:
        entries = choice["logprobs"]["content"]
        assert len(entries) == 6
        assert all(e["logprob"] <= 0 and len(e["top_logprobs"]) == 2 for e in entries)


def test_response_format_on_an_image_request(vision_server: VisionServer, tiny_vlm: str) -> None:
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string", "enum": ["red", "blue"]}},
        "required": ["colour"],
        "additionalProperties": False,
    }
    body = chat(
        tiny_vlm,
        ask(data_url(RED)),
        max_tokens=40,
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
    )
    answer = post(vision_server, body)
    assert json.loads(text(answer))["colour"] in ("red", "blue")


def test_a_client_that_leaves_stops_the_generation(
    vision_server: VisionServer, tiny_vlm: str
) -> None:
    server = vision_server.server

    def generated() -> int:
        return int(server.model_info(tiny_vlm)["tokens_generated"])

    before = generated()
    body = chat(tiny_vlm, ask(data_url(RED)), max_tokens=3000, ignore_eos=True, stream=True)
    received = 0
    with server.client.stream("POST", "/v1/chat/completions", json=body) as r:
        for _ in sse_events(r):
            received += 1
            if received == 10:
                break
    stats = "/v1/queue/stats"
    wait_until(
        lambda: server.client.get(stats).json()["queue_stats"]["models"][tiny_vlm]["running"] == 0
    )
    after = wait_until(lambda: (n := generated()) > before and n)
    assert after - before < 1000, "the handler went on generating after the client left"


def test_bad_images_are_400s_naming_the_part(vision_server: VisionServer, tiny_vlm: str) -> None:
    client = vision_server.server.client
    port = httpx.URL(vision_server.site).port
    cases = {
        "data:image/png;base64,aGVsbG8gd29ybGQ=": "not a whole, readable",
        data_url(RED)[:-20]: "it may be truncated",
        data_url(RED)[:-21]: "malformed or truncated",
        "file:///etc/passwd": "file: URLs are not supported",
        "ftp://example.com/x.png": "ftp: URLs are not supported",
        "http://127.0.0.2/x.png": "a loopback address",
        "http://10.1.2.3/x.png": "a private address",
        f"http://127.0.0.1:{port}/missing.png": "HTTP 404",
        "http://127.0.0.1:1/x.png": "could not be fetched",
    }
    for url, message in cases.items():
        body = chat(tiny_vlm, [{"type": "text", "text": "Hi"}, image_part(url)])
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 400, (url, r.text)
        error = r.json()["error"]
        assert error["param"] == "messages[0].content[1].image_url.url", error
        assert message in error["message"], error


def test_too_many_images_and_too_large_an_image(vision_server: VisionServer, tiny_vlm: str) -> None:
    client = vision_server.server.client
    five = [image_part(data_url(RED)) for _ in range(5)]
    r = client.post("/v1/chat/completions", json=chat(tiny_vlm, five))
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "messages[0].content[4]"
    assert "at most 4" in r.json()["error"]["message"]
    noise = png("white", size=(400, 400))
    big = noise + b"\0" * 200_000  # over the server's 200 000-byte cap
    r = client.post("/v1/chat/completions", json=chat(tiny_vlm, [image_part(data_url(big))]))
    assert r.status_code == 413
    assert r.json()["error"]["param"] == "messages[0].content[0].image_url.url"


def test_image_tokens_count_against_the_context(vision_server: VisionServer, tiny_vlm: str) -> None:
    client = vision_server.server.client
    info = client.get("/v1/admin/loaded-models").json()["data"]
    path = next(m["model_path"] for m in info if m["id"] == tiny_vlm)
    spec = {"model_path": path, "model_id": "short", "model_type": "multimodal"}
    assert (
        client.post("/v1/admin/load-model", json={**spec, "context_length": 66}).status_code == 201
    )
    try:
        text_only = post(vision_server, chat("short", [{"type": "text", "text": "Hi"}]))
        assert text_only["usage"]["prompt_tokens"] < 66
        r = client.post("/v1/chat/completions", json=chat("short", ask(data_url(RED))))
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "context_length_exceeded"
    finally:
        client.delete("/v1/admin/unload-model/short")
