"""``INFERENCE_ORCHESTRATION_MODE`` (``orchestration.default_mode``): chat
completions that name no mode run in the configured one when it can answer
them; an unknown mode stops the start with a line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from bodega.settings import embedded_lm_path
from tests.helpers import ROOT, Server, start_server, stop_server

QUESTION = [{"role": "user", "content": "Name one fruit."}]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = start_server(
        "--model", str(embedded_lm_path()), "--model-id", "lm",
        env={"INFERENCE_ORCHESTRATION_MODE": "pipeline"},
    )  # fmt: skip
    yield srv
    stop_server(srv)


def chat(server: Server, **extra: Any) -> dict[str, Any]:
    body = {"model": "lm", "messages": QUESTION, "max_tokens": 6, "temperature": 0, **extra}
    r = server.client.post("/v1/chat/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_a_request_naming_no_mode_runs_the_default(server: Server) -> None:
    data = chat(server)
    run = data["orchestration"]
    assert run["mode"] == "pipeline"
    assert [s["role"] for s in run["steps"]] == ["stage", "stage"]
    assert data["choices"][0]["message"]["content"] == run["steps"][-1]["content"]


def test_a_request_naming_a_mode_keeps_it(server: Server) -> None:
    assert chat(server, orchestration_mode="single")["orchestration"]["mode"] == "single"
    assert chat(server, orchestration_mode="critique")["orchestration"]["mode"] == "critique"


def test_requests_the_mode_cannot_answer_run_plainly(server: Server) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    assert "orchestration" not in chat(server, tools=[tool])
    assert "orchestration" not in chat(server, n=2)
    assert "orchestration" not in chat(server, logprobs=True)


def test_an_unknown_mode_stops_the_start() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bodega", "launch", "--port", "0"],
        cwd=ROOT,
        env={**os.environ, "INFERENCE_ORCHESTRATION_MODE": "jury"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "INFERENCE_ORCHESTRATION_MODE" in result.stderr
