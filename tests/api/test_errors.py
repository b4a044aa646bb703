"""Bad input gets a clear 4xx with an OpenAI error body naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Server, chat_body


def error_of(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return error


def test_malformed_json(server: Server) -> None:
    r = server.client.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert error_of(r, 400)["type"] == "invalid_request_error"


def test_empty_body(server: Server) -> None:
    error_of(server.client.post("/v1/chat/completions"), 400)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "current"}, "messages"),
        ({"model": "current", "messages": []}, "messages"),
        ({"model": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        (chat_body("x", max_tokens="many"), "max_tokens"),
        (chat_body("x", max_tokens=0), "max_tokens"),
        (chat_body("x", temperature=7), "temperature"),
        (chat_body("x", top_p=1.5), "top_p"),
        (chat_body("x", stream="yes"), "stream"),
        (chat_body("x", n=0), "n"),
        (chat_body("x", n=17), "n"),
        (
            chat_body("x", tools=[{"type": "function", "function": {"name": "a b"}}]),
            "tools[0].function.name",
        ),
        (chat_body("x", response_format={"type": "xml"}), "response_format.type"),
        (chat_body("x", top_logprobs=21, logprobs=True), "top_logprobs"),
        (chat_body("x", logit_bias={"5": 101}), "logit_bias"),
        (chat_body("x", stop=[""]), "stop"),
        (
            {"model": "current", "messages": [{"role": "wizard", "content": "x"}]},
            "messages[0].role",
        ),
        ({"model": "current", "messages": [{"content": "x"}]}, "messages[0].role"),
        (
            {
                "model": "current",
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
                ],
            },
            "messages[0].content[0].type",
        ),
    ],
)
def test_bad_chat_fields_name_the_field(server: Server, body: dict[str, Any], param: str) -> None:
    error = error_of(server.client.post("/v1/chat/completions", json=body), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "current"}, "prompt"),
        ({"model": "current", "prompt": 3}, "prompt"),
        ({"model": "current", "prompt": ["a", "b"]}, "prompt"),
        ({"model": "current", "prompt": "a", "echo": True}, "echo"),
        ({"model": "current", "prompt": "a", "n": 17}, "n"),
        ({"model": "current", "prompt": "a", "logprobs": 21}, "logprobs"),
    ],
)
def test_bad_completion_fields_name_the_field(
    server: Server, body: dict[str, Any], param: str
) -> None:
    error = error_of(server.client.post("/v1/completions", json=body), 400)
    assert error["param"] == param


def test_unknown_model_is_404(server: Server) -> None:
    r = server.client.post("/v1/chat/completions", json={**chat_body("x"), "model": "nope"})
    error = error_of(r, 404)
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"


def test_unknown_route_and_method(server: Server) -> None:
    assert error_of(server.client.get("/v1/nothing-here"), 404)["code"] == "not_found"
    assert error_of(server.client.get("/v1/chat/completions"), 405)["code"] == "method_not_allowed"


def test_huge_body_is_413(server: Server) -> None:
    r = server.client.post(
        "/v1/chat/completions",
        content=b"x" * (33 * 1024 * 1024),
        headers={"content-type": "application/json"},
    )
    error_of(r, 413)


@pytest.mark.parametrize(
    ("path", "body", "served_by"),
    [
        ("/v1/chat/completions", chat_body("x", model="all-minilm-l6-v2"), "/v1/embeddings"),
        ("/v1/completions", {"model": "whisper-tiny.en", "prompt": "x"}, "/v1/audio"),
        ("/v1/embeddings", {"model": "smollm2-135m", "input": "x"}, "/v1/chat/completions"),
        (
            "/v1/rerank",
            {"model": "all-minilm-l6-v2", "query": "q", "documents": ["d"]},
            "/v1/embeddings",
        ),
    ],
)
def test_a_model_of_the_wrong_type_is_a_400_naming_model(
    server: Server, path: str, body: dict[str, Any], served_by: str
) -> None:
    error = error_of(server.client.post(path, json=body), 400)
    assert error["param"] == "model"
    assert served_by in error["message"]
