"""The response cache on servers of its own: greedy and seeded requests are
answered from it without reaching the model, sampled ones never; a stream
hit replays the answer; /v1/messages and /v1/responses are cached too
(never a response whose tools the server runs); /metrics counts hits; with ``persist_to_disk`` a hit
survives a restart; ``ENABLE_CACHE`` turns it on."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bodega.settings import embedded_lm_path
from tests.helpers import (
    Server,
    chat_for,
    queue_stats,
    sse_events,
    start_server,
    stop_server,
    wait_until,
)

HEADER = "X-Bodega-Cache"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("response-cache")
    path = folder / "config.yaml"
    path.write_text(
        f"server:\n  data_dir: {folder / 'data'}\n"
        "cache:\n  enabled: true\n  max_size: 50\n  ttl_seconds: 600\n  persist_to_disk: true\n"
        f"models:\n  - model_path: {embedded_lm_path()}\n    model_id: lm\n"
    )
    return path


@pytest.fixture(scope="module")
def server(config: Path) -> Iterator[Server]:
    srv = start_server("--config", str(config), log_path=config.parent / "server.log")
    yield srv
    stop_server(srv)


def fresh(text: str) -> str:
    """``text`` made unique, so no earlier test's entry answers it."""
    return f"{text} ({uuid.uuid4().hex[:8]})"


def generated(server: Server) -> int:
    """The model's ``tokens_generated`` in loaded-models."""
    return int(server.model_info("lm")["tokens_generated"] or 0)


def chat(server: Server, body: dict[str, Any]) -> httpx.Response:
    response = server.client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response


def cache_hits(server: Server) -> float:
    text = server.client.get("/metrics").text
    match = re.search(r'^bodega_response_cache_hits_total\{model="lm"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def access_line(config: Path, request_id: str) -> str:
    """The access-log line of the request ``request_id``."""

    def line() -> str | None:
        text = (config.parent / "server.log").read_text()
        return next((row for row in text.splitlines() if f"[{request_id}]" in row), None)

    found: str = wait_until(line)
    return found


def test_a_hit_is_logged_with_its_model_and_tokens(config: Path, server: Server) -> None:
    body = chat_for("lm", fresh("Name a metal."), max_tokens=5, temperature=0)
    chat(server, body)
    hit = chat(server, body)
    assert hit.headers[HEADER] == "hit"
    line = access_line(config, hit.headers["X-Request-Id"])
    usage = hit.json()["usage"]
    assert "model=lm " in line
    assert f"tokens_in={usage['prompt_tokens']} tokens_out={usage['completion_tokens']}" in line


def test_a_greedy_chat_is_answered_from_the_cache(server: Server) -> None:
    body = chat_for("lm", fresh("Name a colour."), max_tokens=12, temperature=0)
    before = generated(server)
    first = chat(server, body)
    assert first.headers[HEADER] == "miss"
    after_first = wait_until(lambda: generated(server) > before and generated(server))
    second = chat(server, body)
    assert second.headers[HEADER] == "hit"
    assert second.json()["choices"] == first.json()["choices"]
    assert second.json()["usage"] == first.json()["usage"]
    assert second.json()["id"] != first.json()["id"]
    assert generated(server) == after_first  # the model never saw the second


def test_sampled_requests_are_never_cached(server: Server) -> None:
    body = chat_for("lm", fresh("Tell me a word."), max_tokens=6, temperature=0.7)
    for _ in range(2):
        before = generated(server)
        assert chat(server, body).headers[HEADER] == "bypass"
        wait_until(lambda: generated(server) > before)  # noqa: B023


def test_a_fixed_seed_is_cached(server: Server) -> None:
    body = chat_for("lm", fresh("Tell me a word."), max_tokens=6, temperature=0.9, seed=7)
    first = chat(server, body)
    assert first.headers[HEADER] == "miss"
    second = chat(server, body)
    assert second.headers[HEADER] == "hit"
    assert second.json()["choices"] == first.json()["choices"]
    n2 = chat(server, {**body, "n": 2})  # several sampled choices: not cached
    assert n2.headers[HEADER] == "bypass"


def stream_text(server: Server, body: dict[str, Any]) -> tuple[str, str]:
    with server.client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        events = list(sse_events(response))
        outcome = response.headers[HEADER]
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    return outcome, text


def test_a_stream_hit_replays_the_answer(server: Server) -> None:
    body = chat_for("lm", fresh("Count to five."), max_tokens=16, temperature=0, stream=True)
    outcome, text = stream_text(server, body)
    assert outcome == "miss" and text
    before = generated(server)
    outcome, again = stream_text(server, body)
    assert (outcome, again) == ("hit", text)
    as_json = chat(server, {**body, "stream": False})  # the same request, not streamed
    assert as_json.headers[HEADER] == "hit"
    assert as_json.json()["choices"][0]["message"]["content"] == text
    assert generated(server) == before


def test_a_stream_the_client_left_is_not_cached(server: Server) -> None:
    body = chat_for("lm", fresh("Count to 500."), max_tokens=150, temperature=0, stream=True)
    with server.client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.headers[HEADER] == "miss"
        next(response.iter_lines())
    wait_until(lambda: queue_stats(server, "lm")["running"] == 0)
    plain = {**body, "stream": False}
    assert chat(server, plain).headers[HEADER] == "miss"
    assert chat(server, plain).headers[HEADER] == "hit"


def test_legacy_completions_are_cached(server: Server) -> None:
    body = {"model": "lm", "prompt": fresh("Once upon"), "max_tokens": 8, "temperature": 0}
    first = server.client.post("/v1/completions", json=body)
    second = server.client.post("/v1/completions", json=body)
    assert (first.headers[HEADER], second.headers[HEADER]) == ("miss", "hit")
    assert second.json()["choices"][0]["text"] == first.json()["choices"][0]["text"]
    longer = server.client.post("/v1/completions", json={**body, "max_tokens": 9})
    assert longer.headers[HEADER] == "miss"  # another request, another key


def test_metrics_count_hits(server: Server) -> None:
    body = chat_for("lm", fresh("Say hi."), max_tokens=4, temperature=0)
    chat(server, body)
    before = cache_hits(server)
    chat(server, body)
    assert cache_hits(server) == before + 1
    text = server.client.get("/metrics").text
    assert re.search(r'^bodega_response_cache_misses_total\{model="lm"\} [1-9]', text, re.M)
    entries = re.search(r"^bodega_response_cache_entries (\S+)$", text, re.M)
    assert entries and float(entries.group(1)) >= 1


def test_anthropic_messages_are_cached(server: Server) -> None:
    body = {
        "model": "lm", "max_tokens": 10, "temperature": 0,
        "messages": [{"role": "user", "content": fresh("Name an animal.")}],
    }  # fmt: skip
    first = server.client.post("/v1/messages", json=body)
    assert first.status_code == 200 and first.headers[HEADER] == "miss"
    before = wait_until(lambda: generated(server))
    second = server.client.post("/v1/messages", json=body)
    assert second.headers[HEADER] == "hit"
    assert second.json()["content"] == first.json()["content"]
    assert second.json()["usage"] == first.json()["usage"]
    assert second.json()["id"] != first.json()["id"]
    with server.client.stream("POST", "/v1/messages", json={**body, "stream": True}) as streamed:
        assert streamed.headers[HEADER] == "hit"
        events = list(sse_events(streamed))
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    assert text == first.json()["content"][0]["text"]
    assert events[-1]["type"] == "message_stop"
    sampled = server.client.post("/v1/messages", json={**body, "temperature": 0.8})
    assert sampled.headers[HEADER] == "bypass"
    assert generated(server) > before


def output_text(answer: dict[str, Any]) -> str:
    return "".join(
        part["text"]
        for item in answer["output"] if item["type"] == "message"
        for part in item["content"] if part["type"] == "output_text"
    )  # fmt: skip


def test_responses_are_cached_unless_the_server_runs_tools(server: Server) -> None:
    body = {
        "model": "lm", "input": fresh("Name a city."), "max_output_tokens": 10,
        "temperature": 0, "store": False,
    }  # fmt: skip
    first = server.client.post("/v1/responses", json=body)
    assert first.status_code == 200 and first.headers[HEADER] == "miss"
    before = wait_until(lambda: generated(server))
    second = server.client.post("/v1/responses", json=body)
    assert second.headers[HEADER] == "hit"
    assert output_text(second.json()) == output_text(first.json()) != ""
    assert second.json()["usage"] == first.json()["usage"]
    assert second.json()["id"] != first.json()["id"]
    with server.client.stream("POST", "/v1/responses", json={**body, "stream": True}) as streamed:
        assert streamed.headers[HEADER] == "hit"
        events = list(sse_events(streamed))
    assert events[-1]["type"] == f"response.{first.json()['status']}"  # completed or incomplete
    assert output_text(events[-1]["response"]) == output_text(first.json())
    assert generated(server) == before  # both hits left the model alone
    with_tool = {**body, "tools": [{"type": "calculator"}]}  # a tool the server would run
    assert server.client.post("/v1/responses", json=with_tool).headers[HEADER] == "bypass"
    assert server.client.post("/v1/responses", json=with_tool).headers[HEADER] == "bypass"


def test_a_persisted_hit_survives_a_restart(config: Path, server: Server) -> None:
    body = chat_for("lm", fresh("Name a fruit."), max_tokens=10, temperature=0)
    first = chat(server, body)
    stop_server(server)
    again = start_server("--config", str(config))
    try:
        before = generated(again)
        second = chat(again, body)
        assert second.headers[HEADER] == "hit"
        assert second.json()["choices"] == first.json()["choices"]
        assert generated(again) == before
    finally:
        stop_server(again)


def test_env_variables_turn_the_cache_on() -> None:
    off = start_server("--model", str(embedded_lm_path()), "--model-id", "lm")
    try:
        body = chat_for("lm", fresh("Hello."), max_tokens=4, temperature=0)
        assert HEADER not in chat(off, body).headers  # off by default
    finally:
        stop_server(off)
    on = start_server(
        "--model", str(embedded_lm_path()), "--model-id", "lm",
        env={"ENABLE_CACHE": "true", "CACHE_MAX_SIZE": "1", "CACHE_TTL_SECONDS": "600"},
    )  # fmt: skip
    try:
        first, second = (chat_for("lm", fresh("Hello."), max_tokens=4, temperature=0) for _ in "ab")
        assert chat(on, first).headers[HEADER] == "miss"
        assert chat(on, first).headers[HEADER] == "hit"
        assert chat(on, second).headers[HEADER] == "miss"
        assert chat(on, first).headers[HEADER] == "miss"  # CACHE_MAX_SIZE 1: evicted
    finally:
        stop_server(on)
