"""Stored responses on a server of their own: they survive a restart and a
kill -9, the store stays within ``responses.max_stored``, and built-in tools
run on the server (a local stand-in answers the web search)."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from bodega.settings import embedded_lm_path
from tests.helpers import Server, start_server, stop_server
from tests.tools.providers import FakeProviders


@pytest.fixture(scope="module")
def providers() -> Iterator[FakeProviders]:
    with FakeProviders() as fake:
        yield fake


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, providers: FakeProviders) -> Path:
    folder = tmp_path_factory.mktemp("responses-store")
    path = folder / "config.yaml"
    path.write_text(
        f"server:\n  data_dir: {folder / 'data'}\n"
        "responses:\n  max_stored: 3\n"
        f"tools:\n  web_search:\n    url: {providers.url}/ddg/html/\n"
        f"models:\n  - model_path: {embedded_lm_path()}\n    model_id: lm\n"
    )
    return path


def launch(config: Path) -> Server:
    return start_server("--config", str(config))


def client_of(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)


def test_the_store_survives_kill_9_and_stays_bounded(config: Path) -> None:
    server = launch(config)
    try:
        client = client_of(server)
        first = client.responses.create(
            model="lm", input="My name is Ada.", max_output_tokens=8, temperature=0
        )
    finally:
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
    server = launch(config)
    try:
        client = client_of(server)
        again = client.responses.retrieve(first.id)
        assert again.output_text == first.output_text and again.status == first.status
        follow = client.responses.create(
            model="lm", previous_response_id=first.id, input="And my name?", max_output_tokens=4
        )
        assert follow.previous_response_id == first.id
        newer = [
            client.responses.create(model="lm", input=f"Hi {i}", max_output_tokens=2)
            for i in range(2)
        ]
        # max_stored is 3: the oldest response went first.
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(first.id)
        for kept in [follow, *newer]:
            assert client.responses.retrieve(kept.id).id == kept.id
    finally:
        stop_server(server)


def test_built_in_tools_run_on_the_server(config: Path, providers: FakeProviders) -> None:
    server = launch(config)
    try:
        response = client_of(server).responses.create(
            model="lm",
            input="Search the web for python trio.",
            tools=[{"type": "web_search"}],  # type: ignore[list-item,typeddict-item]
            tool_choice="required",
            parallel_tool_calls=False,
            max_tool_calls=1,
            max_output_tokens=700,
            temperature=0,
        )
    finally:
        stop_server(server)
    call, output = response.output[0], response.output[1]
    assert call.type == "function_call" and call.name == "web_search"
    assert call.status == "completed"
    assert output.type == "function_call_output" and output.call_id == call.call_id
    assert any(path.startswith("/ddg") for path, _, _ in providers.requests)
    result = json.loads(output.output)  # type: ignore[arg-type]
    assert "trio.readthedocs.io" in json.dumps(result), result
    # The model saw the results and answered again (or ran out of tokens doing so).
    if response.status == "completed":
        assert response.output[-1].type == "message"
        assert all(o.type != "function_call" for o in response.output[2:])
