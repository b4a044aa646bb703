"""A model's generation defaults fill what a request leaves out, nothing else."""

from __future__ import annotations

import msgspec

from bodega.openai.requests import ChatCompletionRequest, CompletionRequest
from bodega.services.chat import chat_request
from bodega.services.completions import completion_request
from bodega.services.sampling import with_defaults
from bodega.settings import GenerationDefaults

DEFAULTS = GenerationDefaults(
    temperature=0.1, top_p=0.5, top_k=7, max_tokens=9, repetition_penalty=1.2
)


def chat(**fields: object) -> ChatCompletionRequest:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return msgspec.convert(body, ChatCompletionRequest)


def test_left_out_fields_take_the_defaults() -> None:
    request = chat()
    message = with_defaults(chat_request(request), request, DEFAULTS)
    s = message.sampling
    assert (s.temperature, s.top_p, s.top_k, s.repetition_penalty) == (0.1, 0.5, 7, 1.2)
    assert message.max_tokens == 9


def test_given_fields_win() -> None:
    request = chat(temperature=0.7, top_k=0, max_completion_tokens=4)
    message = with_defaults(chat_request(request), request, DEFAULTS)
    assert message.sampling.temperature == 0.7 and message.sampling.top_k == 0
    assert message.sampling.top_p == 0.5 and message.max_tokens == 4


def test_no_defaults_changes_nothing() -> None:
    request = chat()
    message = chat_request(request)
    assert with_defaults(message, request, None) == message
    assert with_defaults(message, request, GenerationDefaults()) == message


def test_completions_left_out_max_tokens_is_the_model_default_else_16() -> None:
    request = msgspec.convert({"model": "m", "prompt": "p"}, CompletionRequest)
    assert completion_request(request).max_tokens == 16
    assert with_defaults(completion_request(request), request, DEFAULTS).max_tokens == 9
    given = msgspec.convert({"model": "m", "prompt": "p", "max_tokens": 16}, CompletionRequest)
    assert with_defaults(completion_request(given), given, DEFAULTS).max_tokens == 16
    unbounded = msgspec.convert(
        {"model": "m", "prompt": "p", "max_tokens": None}, CompletionRequest
    )
    assert completion_request(unbounded).max_tokens is None
