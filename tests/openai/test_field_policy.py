"""The request-field policy: every OpenAI field declared and classified,
refused fields named, unknown fields logged once per name."""

from __future__ import annotations

import json
import logging
import typing
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from openai.types import completion_create_params as legacy_params
from openai.types.chat import completion_create_params as chat_params
from openai.types.shared.reasoning_effort import ReasoningEffort

from bodega.errors import InvalidRequest, from_validation_error
from bodega.openai import field_policy
from bodega.openai.embeddings import EmbeddingRequest
from bodega.openai.field_policy import (
    CHAT,
    COMPLETIONS,
    FIELDS,
    Handling,
    decode_request,
    markdown_table,
)
from bodega.openai.requests import ChatCompletionRequest, CompletionRequest

CHAT_ROUTE = "/v1/chat/completions"
COMPLETIONS_ROUTE = "/v1/completions"
MESSAGES = [{"role": "user", "content": "hi"}]

# Every top-level field of OpenAI's requests, from the SDK's own TypedDicts
# (the non-streaming variant adds ``stream`` to the base): a field OpenAI adds
# fails these tests until it is declared and classified here.
OPENAI_CHAT = set(chat_params.CompletionCreateParamsBase.__annotations__) | set(
    chat_params.CompletionCreateParamsNonStreaming.__annotations__
)
OPENAI_COMPLETIONS = set(legacy_params.CompletionCreateParamsBase.__annotations__) | set(
    legacy_params.CompletionCreateParamsNonStreaming.__annotations__
)


@pytest.fixture(autouse=True)
def fresh_log() -> Iterator[None]:
    field_policy.reset_logged_fields()
    yield
    field_policy.reset_logged_fields()


def chat(**fields: Any) -> ChatCompletionRequest:
    body = json.dumps({"model": "m", "messages": MESSAGES, **fields}).encode()
    return decode_request(body, ChatCompletionRequest, CHAT_ROUTE)


def completion(**fields: Any) -> CompletionRequest:
    body = json.dumps({"model": "m", "prompt": "hi", **fields}).encode()
    return decode_request(body, CompletionRequest, COMPLETIONS_ROUTE)


def names(api: str) -> set[str]:
    return {rule.name for rule in FIELDS if api in rule.apis}


# --- the table -------------------------------------------------------------


def test_openai_field_lists_are_not_empty() -> None:
    assert {"messages", "model", "stream", "temperature"} <= OPENAI_CHAT
    assert {"prompt", "model", "stream", "echo"} <= OPENAI_COMPLETIONS


@pytest.mark.parametrize(
    ("openai_fields", "struct"),
    [(OPENAI_CHAT, ChatCompletionRequest), (OPENAI_COMPLETIONS, CompletionRequest)],
    ids=["chat", "completions"],
)
def test_every_openai_field_is_declared(openai_fields: set[str], struct: type) -> None:
    assert openai_fields - set(struct.__struct_fields__) == set()


@pytest.mark.parametrize(
    ("api", "struct", "openai_fields"),
    [
        (CHAT, ChatCompletionRequest, OPENAI_CHAT),
        (COMPLETIONS, CompletionRequest, OPENAI_COMPLETIONS),
    ],
    ids=["chat", "completions"],
)
def test_table_classifies_exactly_the_declared_fields(
    api: str, struct: type, openai_fields: set[str]
) -> None:
    assert names(api) == set(struct.__struct_fields__)
    extensions = {r.name for r in FIELDS if api in r.apis and r.origin != "OpenAI"}
    # A field is OpenAI's or an extension, never both.
    assert extensions == names(api) - openai_fields


def test_table_has_one_row_per_field_and_a_note_each() -> None:
    assert len({r.name for r in FIELDS}) == len(FIELDS)
    assert all(r.note and r.apis for r in FIELDS)
    table = markdown_table()
    assert all(f"| `{r.name}` |" in table for r in FIELDS)


def test_named_no_effect_and_refused_fields() -> None:
    rules = field_policy.RULES
    assert rules["service_tier"].handling is rules["priority"].handling is Handling.HONOURED
    for name in ("store", "metadata", "user", "safety_identifier"):
        assert rules[name].handling is Handling.NO_EFFECT
    for name in ("prompt_cache_key", "prompt_cache_retention", "prompt_cache_options"):
        assert rules[name].handling is Handling.NO_EFFECT
    for name in ("audio", "modalities", "web_search_options", "moderation", "functions"):
        assert rules[name].handling is Handling.REFUSED
    for name in ("reasoning_effort", "ignore_eos", "min_tokens", "chat_template_kwargs"):
        assert rules[name].handling is Handling.HONOURED


# --- refused fields --------------------------------------------------------

REFUSED_CHAT = [
    ("audio", {"format": "wav", "voice": "alloy"}),
    ("audio", {"format": "mp3", "voice": {"id": "voice_1234"}}),
    ("modalities", ["text", "audio"]),
    ("functions", [{"name": "f", "parameters": {"type": "object"}}]),
    ("function_call", {"name": "f"}),
    ("moderation", {"model": "omni-moderation-latest"}),
    ("verbosity", "low"),
    ("verbosity", "high"),
    ("web_search_options", {}),
    ("web_search_options", {"search_context_size": "low"}),
]


@pytest.mark.parametrize(("field", "value"), REFUSED_CHAT)
def test_refused_chat_field_is_a_400_naming_it(field: str, value: Any) -> None:
    with pytest.raises(InvalidRequest) as info:
        chat(**{field: value})
    assert info.value.param == field
    assert field in info.value.message
    assert info.value.status == 400


@pytest.mark.parametrize(("field", "value"), [("echo", True), ("suffix", "x"), ("best_of", 2)])
def test_refused_completions_field_is_a_400_naming_it(field: str, value: Any) -> None:
    with pytest.raises(InvalidRequest) as info:
        completion(**{field: value})
    assert info.value.param == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("audio", None),
        ("modalities", ["text"]),
        ("modalities", None),
        ("functions", []),
        ("function_call", "none"),
        ("function_call", "auto"),
        ("moderation", None),
        ("verbosity", "medium"),
        ("web_search_options", None),
    ],
)
def test_refused_chat_field_at_its_default_is_accepted(field: str, value: Any) -> None:
    assert getattr(chat(**{field: value}), field) == value


@pytest.mark.parametrize(
    ("field", "value"), [("echo", False), ("suffix", None), ("suffix", ""), ("best_of", 1)]
)
def test_refused_completions_field_at_its_default_is_accepted(field: str, value: Any) -> None:
    completion(**{field: value})


# --- no-effect fields and extensions --------------------------------------

NO_EFFECT_CHAT = {
    "service_tier": "flex",
    "store": True,
    "metadata": {"customer": "acme"},
    "user": "u-1",
    "safety_identifier": "hash-1",
    "prompt_cache_key": "k",
    "prompt_cache_retention": "24h",
    "prompt_cache_options": {"mode": "implicit", "ttl": "30m"},
    "prediction": {"type": "content", "content": "draft"},
    "stream_options": {"include_usage": True, "include_obfuscation": False},
}


def test_no_effect_fields_are_accepted_typed() -> None:
    request = chat(**NO_EFFECT_CHAT)
    assert request.metadata == {"customer": "acme"}
    assert request.prompt_cache_options is not None
    assert request.prompt_cache_options.mode == "implicit"
    assert request.prediction is not None and request.prediction.content == "draft"
    assert completion(user="u-1").user == "u-1"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"store": "yes"}, "store"),
        ({"metadata": {"k": 1}}, "metadata"),
        ({"service_tier": 3}, "service_tier"),
        ({"prompt_cache_options": {"mode": "sometimes"}}, "prompt_cache_options.mode"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"min_tokens": -1}, "min_tokens"),
        ({"ignore_eos": "yes"}, "ignore_eos"),
        ({"audio": {"voice": "alloy"}}, "audio.format"),
    ],
)
def test_declared_fields_are_type_checked(body: dict[str, Any], param: str) -> None:
    with pytest.raises(msgspec.ValidationError) as info:
        chat(**body)
    assert from_validation_error(info.value).param == param


def test_every_openai_reasoning_effort_is_accepted() -> None:
    efforts = [e for e in typing.get_args(ReasoningEffort) if isinstance(e, str)]
    efforts += [e for arg in typing.get_args(ReasoningEffort) for e in typing.get_args(arg)]
    assert {"none", "minimal", "low", "medium", "high", "xhigh"} <= set(efforts)
    for effort in efforts:
        assert chat(reasoning_effort=effort).reasoning_effort == effort


def test_vendor_extensions_are_declared() -> None:
    request = chat(
        ignore_eos=True,
        min_tokens=3,
        top_k=20,
        min_p=0.05,
        repetition_penalty=1.1,
        chat_template_kwargs={"enable_thinking": False},
        response_format={"type": "json_object", "schema": {"type": "object"}},
    )
    assert request.ignore_eos and request.min_tokens == 3
    assert request.response_format is not None
    assert request.response_format.schema == {"type": "object"}
    prompt = completion(ignore_eos=True, min_tokens=2)
    assert prompt.ignore_eos and prompt.min_tokens == 2


def test_schema_outside_json_object_is_refused() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x"}, "schema": {"type": "object"}}
    with pytest.raises(InvalidRequest) as info:
        chat(response_format=fmt)
    assert info.value.param == "response_format.schema"


def test_min_tokens_above_the_limit_is_refused() -> None:
    with pytest.raises(InvalidRequest) as info:
        chat(min_tokens=10, max_completion_tokens=5)
    assert info.value.param == "min_tokens"
    with pytest.raises(InvalidRequest):
        completion(min_tokens=17)  # completions' max_tokens defaults to 16
    assert chat(min_tokens=10).min_tokens == 10  # no limit given
    assert completion(min_tokens=8, max_tokens=8).min_tokens == 8


# --- unknown fields --------------------------------------------------------


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == field_policy.__name__ and r.levelno == logging.WARNING
    ]


def test_unknown_fields_warn_once_per_name_with_the_route(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=field_policy.__name__)
    request = chat(cache_prompt=True, mirostat=2, temperature=0.5)
    assert request.temperature == 0.5
    chat(cache_prompt=False, mirostat=0)
    completion(cache_prompt=True, typical_p=0.9)
    logged = warnings_of(caplog)
    assert len(logged) == 3
    assert any("'cache_prompt'" in m and CHAT_ROUTE in m for m in logged)
    assert any("'mirostat'" in m and CHAT_ROUTE in m for m in logged)
    assert any("'typical_p'" in m and COMPLETIONS_ROUTE in m for m in logged)


def test_declared_fields_do_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=field_policy.__name__)
    chat(**NO_EFFECT_CHAT, top_k=5, reasoning_effort="low")
    completion(echo=False, logprobs=2)
    assert warnings_of(caplog) == []


def test_a_field_of_the_other_endpoint_is_unknown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=field_policy.__name__)
    completion(reasoning_effort="low")
    assert any("'reasoning_effort'" in m for m in warnings_of(caplog))


def test_unknown_field_and_a_bad_field_is_still_a_400(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=field_policy.__name__)
    with pytest.raises(msgspec.ValidationError) as info:
        chat(foo=1, temperature=9)
    assert from_validation_error(info.value).param == "temperature"
    assert any("'foo'" in m for m in warnings_of(caplog))


def test_a_bad_field_alone_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=field_policy.__name__)
    with pytest.raises(msgspec.ValidationError):
        chat(temperature=9)
    with pytest.raises(msgspec.DecodeError):
        decode_request(b'{"model": "m", "x": 1, ', ChatCompletionRequest, CHAT_ROUTE)
    with pytest.raises(msgspec.ValidationError):
        decode_request(b"[1]", ChatCompletionRequest, CHAT_ROUTE)
    assert warnings_of(caplog) == []


def test_unknown_names_logged_are_bounded(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger=field_policy.__name__)
    monkeypatch.setattr(field_policy, "MAX_LOGGED_NAMES", 3)
    chat(**{f"x{i}": i for i in range(6)})
    chat(y=1)
    logged = warnings_of(caplog)
    assert len(logged) == 4  # three names, then one line saying no more
    assert "no more" in logged[-1]


def test_nested_unknown_fields_are_ignored_silently(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=field_policy.__name__)
    chat(messages=[{"role": "user", "content": "hi", "weight": 1}])
    assert warnings_of(caplog) == []


def test_result_is_the_requested_type() -> None:
    assert isinstance(chat(), ChatCompletionRequest)
    assert isinstance(chat(foo=1), ChatCompletionRequest)
    assert isinstance(completion(), CompletionRequest)


def test_other_bodies_decode_as_before(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=field_policy.__name__)
    body = b'{"model": "m", "input": "hi", "whatever": 1}'
    request = decode_request(body, EmbeddingRequest, "/v1/embeddings")
    assert type(request) is EmbeddingRequest
    assert warnings_of(caplog) == []
