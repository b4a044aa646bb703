"""The official ``openai`` SDK as a client."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.helpers import SYSTEM, Server


@pytest.fixture
def sdk(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_chat(sdk: openai.OpenAI, model: str) -> None:
    completion = sdk.chat.completions.create(
        model=model,
        messages=[SYSTEM, {"role": "user", "content": "What is the capital of France?"}],
        temperature=0,
        max_tokens=30,
    )
    assert "Paris" in (completion.choices[0].message.content or "")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_chat_stream(sdk: openai.OpenAI, model: str) -> None:
    stream = sdk.chat.completions.create(
        model=model,
        messages=[SYSTEM, {"role": "user", "content": "What is the capital of France?"}],
        temperature=0,
        max_tokens=30,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_completions(sdk: openai.OpenAI, model: str) -> None:
    completion = sdk.completions.create(
        model=model, prompt="The capital of France is", max_tokens=5, temperature=0
    )
    assert completion.object == "text_completion"
    assert completion.choices[0].text
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage is not None and completion.usage.completion_tokens <= 5


def test_completions_stream(sdk: openai.OpenAI, model: str) -> None:
    stream = sdk.completions.create(
        model=model, prompt="One, two, three,", max_tokens=8, temperature=0, stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices).strip()
    assert chunks[-1].choices[0].finish_reason == "length"


def test_errors_surface_as_sdk_exceptions(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(
            model="current", messages=[{"role": "user", "content": "x"}], n=17
        )
    assert info.value.param == "n"  # type: ignore[attr-defined]


def test_models_list(sdk: openai.OpenAI) -> None:
    assert "smollm2-135m" in [m.id for m in sdk.models.list()]
