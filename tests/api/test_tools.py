"""``/v1/tools`` and ``/v1/tools/execute`` on a real server whose providers are a local
stand-in (tests/tools/providers.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import Server, start_server, stop_server
from tests.tools.providers import FakeProviders

TOOLS = ["calculator", "web_search", "news_search", "academic_search"]


@pytest.fixture(scope="module")
def providers() -> Iterator[FakeProviders]:
    with FakeProviders() as fake:
        yield fake


@pytest.fixture(scope="module")
def tools_server(
    providers: FakeProviders, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server with no models whose tools call the stand-in providers."""
    config = Path(tmp_path_factory.mktemp("tools")) / "config.yaml"
    config.write_text(
        f"""
models: []
tools:
  timeout: 1
  max_response_bytes: 65536
  web_search: {{provider: duckduckgo, url: "{providers.url}/ddg/html/"}}
  news_search: {{provider: rss, url: "{providers.url}/news/rss?hl=en-US&gl=US&ceid=US:en"}}
  academic_search: {{url: "{providers.url}/arxiv/api/query"}}
"""
    )
    server = start_server("--config", str(config))
    yield server
    stop_server(server)


@pytest.fixture
def client(tools_server: Server, providers: FakeProviders) -> httpx.Client:
    providers.mode = "ok"
    return tools_server.client


def execute(client: httpx.Client, tool: str, arguments: Any) -> httpx.Response:
    return client.post("/v1/tools/execute", json={"tool_name": tool, "arguments": arguments})


def error_of(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return error


def test_list_tools(client: httpx.Client) -> None:
    body = client.get("/v1/tools").json()
    assert body["object"] == "list"
    assert [t["function"]["name"] for t in body["data"]] == TOOLS
    for tool in body["data"]:
        assert tool["type"] == "function"
        assert set(tool["function"]) == {"name", "description", "parameters"}
        params = tool["function"]["parameters"]
        assert params["type"] == "object"
        assert params["additionalProperties"] is False
        assert params["required"]
    calc = body["data"][0]["function"]["parameters"]
    assert calc["properties"]["expression"]["type"] == "string"
    academic = body["data"][3]["function"]["parameters"]["properties"]
    assert sorted(academic["sort_by"]["enum"]) == ["lastUpdatedDate", "relevance", "submittedDate"]
    assert academic["max_results"] == {
        "description": "How many results to return (1-20).",
        "type": "integer",
        "minimum": 1,
        "maximum": 20,
        "default": 5,
    }


@pytest.mark.parametrize(
    ("expression", "value", "exact"),
    [
        ("0.1 + 0.2", "0.3", True),
        ("2**100", "1267650600228229401496703205376", True),
        ("factorial(20)", "2432902008176640000", True),
        ("1 + 2 * 3 ** 2", "19", True),
        ("sqrt(2)", "1.4142135623730951", False),
    ],
)
def test_calculator(client: httpx.Client, expression: str, value: str, exact: bool) -> None:
    r = execute(client, "calculator", {"expression": expression})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "tool_name": "calculator",
        "result": {"expression": expression, "value": value, "exact": exact, "decimal": value},
    }


def test_calculator_fraction(client: httpx.Client) -> None:
    result = execute(client, "calculator", {"expression": "1/3"}).json()["result"]
    assert result["value"] == "1/3"
    assert result["decimal"].startswith("0.333333333")


def test_arguments_as_a_json_string(client: httpx.Client) -> None:
    """An OpenAI tool call carries its arguments as a JSON string; that works as is."""
    r = execute(client, "calculator", '{"expression": "6 * 7"}')
    assert r.json()["result"]["value"] == "42"


@pytest.mark.parametrize(
    "expression",
    [
        "2**10**10",
        "9**9**9",
        "factorial(10**9)",
        "__import__('os').system('true')",
        "(1).__class__",
        "open('/etc/passwd')",
        "(lambda: 1)()",
        "[x for x in range(10**9)]",
        "x",
        "1/0",
        "1 +",
        "1" + "+1" * 600,
    ],
)
def test_calculator_refusals(client: httpx.Client, expression: str) -> None:
    start = time.monotonic()
    r = execute(client, "calculator", {"expression": expression})
    error = error_of(r, 400)
    assert time.monotonic() - start < 2
    assert error["param"] == "arguments.expression"
    assert error["type"] == "invalid_request_error"
    assert error["code"] in ("invalid_expression", None)


@pytest.mark.parametrize(
    ("tool", "arguments", "param"),
    [
        ("calculator", {}, "arguments.expression"),
        ("calculator", {"expression": 5}, "arguments.expression"),
        ("calculator", {"expression": ""}, "arguments.expression"),
        ("calculator", {"expression": "1", "extra": 1}, "arguments.extra"),
        ("calculator", [1], "arguments"),
        ("calculator", None, "arguments"),
        ("calculator", "not json", "arguments"),
        ("web_search", {"query": "x", "max_results": 100}, "arguments.max_results"),
        ("web_search", {"query": "x", "max_results": "3"}, "arguments.max_results"),
        ("news_search", {"q": "x"}, "arguments.q"),
        ("news_search", {"max_results": 3}, "arguments.query"),
        ("academic_search", {"query": "x", "sort_by": "random"}, "arguments.sort_by"),
    ],
)
def test_bad_arguments(client: httpx.Client, tool: str, arguments: Any, param: str) -> None:
    error = error_of(execute(client, tool, arguments), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    if param != "arguments":
        assert f"`{param}`" in error["message"]


def test_unknown_tool(client: httpx.Client) -> None:
    error = error_of(execute(client, "shell", {"cmd": "ls"}), 404)
    assert error["code"] == "tool_not_found"
    assert error["param"] == "tool_name"
    assert "calculator" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"arguments": {}}, "tool_name"),
        ({"tool_name": 3}, "tool_name"),
        ({"tool_name": ""}, "tool_name"),
        ({"tool_name": "calculator", "args": {}}, "args"),
    ],
)
def test_bad_body(client: httpx.Client, body: Any, param: str) -> None:
    assert error_of(client.post("/v1/tools/execute", json=body), 400)["param"] == param


def test_malformed_and_empty_body(client: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    r = client.post("/v1/tools/execute", content=b"{nope", headers=headers)
    assert error_of(r, 400)["code"] == "invalid_json"
    error_of(client.post("/v1/tools/execute"), 400)


def test_web_search(client: httpx.Client, providers: FakeProviders) -> None:
    r = execute(client, "web_search", {"query": "python trio", "max_results": 2})
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert result["provider"] == "duckduckgo"
    assert result["results"][0] == {
        "title": "Trio: a friendly Python library for async concurrency and I/O",
        "url": "https://trio.readthedocs.io/en/stable/",
        "snippet": "The Trio project aims to produce a production-quality, permissively "
        "licensed, async/await-native I/O library for Python & friends.",
    }
    assert len(result["results"]) == 2
    assert providers.last_query() == {"q": ["python trio"]}


def test_news_search(client: httpx.Client) -> None:
    result = execute(client, "news_search", {"query": "open models"}).json()["result"]
    assert [h["source"] for h in result["results"]] == ["The Example Times", "Gadget Weekly"]
    assert result["results"][0]["published"] == "2026-11-22T18:30:00+00:00"


def test_academic_search(client: httpx.Client) -> None:
    result = execute(client, "academic_search", {"query": "attention"}).json()["result"]
    assert result["total_results"] == 184302
    paper = result["results"][0]
    assert paper["title"] == "Attention Is All You Need"
    assert paper["pdf_url"] == "http://arxiv.org/pdf/1706.03762v7"


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("status500", "answered HTTP 500"),
        ("slow", "did not answer within 1 s"),
        ("trickle", "did not answer within 1 s"),
        ("oversize", "larger than 65536 bytes"),
        ("oversize_chunked", "larger than 65536 bytes"),
        ("drop", "could not be reached"),
        ("garbage", "not"),
    ],
)
@pytest.mark.parametrize("tool", ["web_search", "news_search", "academic_search"])
def test_provider_failure_is_502(
    client: httpx.Client, providers: FakeProviders, mode: str, reason: str, tool: str
) -> None:
    providers.mode = mode
    start = time.monotonic()
    error = error_of(execute(client, tool, {"query": "anything"}), 502)
    assert time.monotonic() - start < 3
    assert error["type"] == "server_error"
    assert error["code"] == "tool_provider_failed"
    assert reason in error["message"]


def test_server_still_serves_after_failures(client: httpx.Client) -> None:
    assert execute(client, "calculator", {"expression": "2 + 2"}).json()["result"]["value"] == "4"
