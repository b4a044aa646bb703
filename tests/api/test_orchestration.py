"""Orchestration modes on chat completions, over HTTP on the embedded model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import Server, queue_stats, sse_events, wait_until

EMBEDDED = "smollm2-135m"
QUESTION = [{"role": "user", "content": "Name one fruit."}]


def body(mode: str, model: str = EMBEDDED, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": QUESTION,
        "max_tokens": 8,
        "temperature": 0,
        "orchestration_mode": mode,
        **extra,
    }


def orchestrate(server: Server, mode: str, **extra: Any) -> dict[str, Any]:
    r = server.client.post("/v1/chat/completions", json=body(mode, **extra), timeout=300)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def second(server: Server) -> Iterator[str]:
    """A second, differently configured copy of the embedded model: two slots."""
    assert server.load("orch-b", max_concurrency=2).status_code == 201
    yield "orch-b"
    server.unload("orch-b")


ROLES = {
    "single": ["answer"],
    "critique": ["drafter", "critic", "reviser"],
    "debate": ["debater", "debater", "debater", "debater", "judge"],
    "ensemble": ["member", "member", "aggregator"],
    "pipeline": ["stage", "stage"],
}


@pytest.mark.parametrize("mode", list(ROLES))
def test_each_mode_with_the_embedded_model_in_every_part(server: Server, mode: str) -> None:
    data = orchestrate(server, mode)
    run = data["orchestration"]
    steps = run["steps"]
    assert run["mode"] == mode
    assert [s["role"] for s in steps] == ROLES[mode]
    assert run["models_used"] == [EMBEDDED]
    assert all(s["model"] == EMBEDDED and s["content"] for s in steps)
    assert run["total_inference_time_ms"] >= max(s["finished_ms"] for s in steps)
    content = data["choices"][0]["message"]["content"]
    if mode == "ensemble":
        decision = run["decision"]
        if decision["kind"] == "picked":
            assert content == steps[decision["member"]]["content"]
        else:
            assert content and content in steps[-1]["content"]
    else:
        assert content == steps[-1]["content"]
    if mode == "debate":
        assert [s.get("round") for s in steps] == [1, 1, 2, 2, None]
    assert data["usage"]["completion_tokens"] >= len(steps)


def test_critique_with_two_models(server: Server, second: str) -> None:
    data = orchestrate(server, "critique", orchestration={"critique": {"critic": second}})
    run = data["orchestration"]
    assert run["models_used"] == [EMBEDDED, second]
    assert [s["model"] for s in run["steps"]] == [EMBEDDED, second, EMBEDDED]
    assert data["choices"][0]["message"]["content"] == run["steps"][-1]["content"]


def test_ensemble_members_run_side_by_side(server: Server, second: str) -> None:
    roles = {"ensemble": {"members": [second, second], "aggregator": EMBEDDED}}
    data = orchestrate(server, "ensemble", orchestration=roles, max_tokens=24, ignore_eos=True)
    first, other, aggregator = data["orchestration"]["steps"]
    # Each member produced output before the other finished: both ran at once
    # on the two-slot model (one after the other, neither could).
    assert first["started_ms"] < other["finished_ms"]
    assert other["started_ms"] < first["finished_ms"]
    assert aggregator["started_ms"] >= max(first["finished_ms"], other["finished_ms"])
    assert data["orchestration"]["models_used"] == [second, EMBEDDED]


def test_streaming_returns_the_final_stage(server: Server) -> None:
    texts: list[str] = []
    final: dict[str, Any] = {}
    with server.client.stream(
        "POST", "/v1/chat/completions", json=body("critique", stream=True), timeout=300
    ) as r:
        assert r.status_code == 200
        for event in sse_events(r):
            if event == "[DONE]":
                break
            assert "orchestration_step" not in event
            if event.get("orchestration"):
                final = event
            for choice in event["choices"]:
                texts.append(choice["delta"].get("content") or "")
    steps = final["orchestration"]["steps"]
    assert [s["role"] for s in steps] == ["drafter", "critic", "reviser"]
    assert "".join(texts) == steps[-1]["content"]
    assert final["choices"][0]["finish_reason"] in ("stop", "length")


def test_streaming_every_stage_marked(server: Server) -> None:
    stage_text: dict[int, str] = {}
    answer: list[str] = []
    final: dict[str, Any] = {}
    extra = {"stream": True, "orchestration": {"stream_stages": True}}
    with server.client.stream(
        "POST", "/v1/chat/completions", json=body("pipeline", **extra), timeout=300
    ) as r:
        for event in sse_events(r):
            if event == "[DONE]":
                break
            final = event if event.get("orchestration") else final
            text = "".join(c["delta"].get("content") or "" for c in event["choices"])
            mark = event.get("orchestration_step")
            if mark:
                stage_text[mark["index"]] = stage_text.get(mark["index"], "") + text
            else:
                answer.append(text)
    steps = final["orchestration"]["steps"]
    assert stage_text == {0: steps[0]["content"]}
    assert "".join(answer) == steps[1]["content"]


def stopped_growing(server: Server, model_id: str, before: int) -> int:
    """``tokens_generated`` of ``model_id`` once its request ended (the count
    lands just after the slot frees) and stayed put for a second."""
    wait_until(lambda: queue_stats(server, model_id)["running"] == 0, timeout=10)
    wait_until(lambda: int(server.model_info(model_id)["tokens_generated"]) > before)
    settled = int(server.model_info(model_id)["tokens_generated"])
    time.sleep(1.0)
    assert int(server.model_info(model_id)["tokens_generated"]) == settled
    return settled


@pytest.fixture
def slow(server: Server) -> Iterator[str]:
    assert server.load("orch-slow", max_concurrency=1).status_code == 201
    yield "orch-slow"
    server.unload("orch-slow")


def test_client_leaving_cancels_the_run(server: Server, slow: str, second: str) -> None:
    before = int(server.model_info(slow)["tokens_generated"])
    later = queue_stats(server, second)["completed"]
    roles = {"pipeline": {"stages": [slow, second]}}
    long = body("pipeline", orchestration=roles, max_tokens=3000, ignore_eos=True)
    with httpx.Client(base_url=server.url) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            impatient.post("/v1/chat/completions", json=long, timeout=httpx.Timeout(10, read=1.5))
    settled = stopped_growing(server, slow, before)
    assert settled - before < 3000  # the first stage was cut short
    stats = queue_stats(server, second)
    assert stats["completed"] == later and stats["running"] == 0  # stage 2 never started


def test_leaving_a_stream_cancels_the_run(server: Server, slow: str, second: str) -> None:
    before = int(server.model_info(slow)["tokens_generated"])
    later = queue_stats(server, second)["completed"]
    roles = {"pipeline": {"stages": [slow, second]}, "stream_stages": True}
    long = body("pipeline", orchestration=roles, max_tokens=3000, ignore_eos=True, stream=True)
    received = 0
    with server.client.stream("POST", "/v1/chat/completions", json=long, timeout=30) as r:
        for event in sse_events(r):
            assert event != "[DONE]" and event["orchestration_step"]["index"] == 0
            received += 1
            if received == 10:
                break
    settled = stopped_growing(server, slow, before)
    assert settled - before < 3000
    stats = queue_stats(server, second)
    assert stats["completed"] == later and stats["running"] == 0


CRITIC = {"critique": {"critic": "no-such-model"}}
BAD_INPUT = [
    ({"orchestration_mode": "chorus"}, "orchestration_mode"),
    ({"orchestration": CRITIC}, "orchestration.critique.critic"),
    ({"orchestration_mode": "debate", "orchestration": {"debate": {"rounds": 9}}}, "rounds"),
    (
        {"orchestration_mode": "ensemble", "orchestration": {"ensemble": {"members": ["x"]}}},
        "members",
    ),
    ({"orchestration_mode": None, "orchestration": {}}, "orchestration"),
    ({"n": 2}, "n"),
]


@pytest.mark.parametrize(("extra", "param"), BAD_INPUT)
def test_bad_input_is_a_400_naming_the_field(
    server: Server, extra: dict[str, Any], param: str
) -> None:
    r = server.client.post("/v1/chat/completions", json={**body("critique"), **extra}, timeout=30)
    assert r.status_code == 400, r.text
    named = r.json()["error"]["param"]
    assert named == param or named == f"orchestration.{extra.get('orchestration_mode')}.{param}"
