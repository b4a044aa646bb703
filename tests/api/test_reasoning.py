"""Reasoning: ``reasoning_content`` apart from ``content``, ``chat_template_kwargs``.

The embedded model does not think by itself, so these tests load it with a
Qwen3-style template whose generation prompt opens ``<think>`` unless
``enable_thinking`` is false: the model's output then starts inside its
reasoning, exactly as with Qwen3 or DeepSeek-R1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from tests.helpers import Server, chat_for, sse_events

THINKING_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% if enable_thinking is defined and not enable_thinking %}"
    "{{ '<think>\\n\\n</think>\\n\\n' }}{% else %}{{ '<think>\\n' }}{% endif %}"
    "{% endif %}"
)
MODELS = {"llamacpp": "smollm2-think", "mlx": "smollm2-think-mlx"}


@pytest.fixture(scope="module", params=sorted(MODELS))
def thinker(
    request: pytest.FixtureRequest, server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    template = Path(tmp_path_factory.mktemp("templates")) / "thinking.jinja"
    template.write_text(THINKING_TEMPLATE)
    engine = str(request.param)
    model_id = MODELS[engine]
    r = server.load(
        model_id, engine=engine, reasoning_parser="qwen3", chat_template_file=str(template)
    )
    assert r.status_code == 201, r.text
    yield model_id
    server.unload(model_id)


def test_reasoning_is_kept_apart_from_the_answer(server: Server, thinker: str) -> None:
    r = server.client.post(
        "/v1/chat/completions",
        json=chat_for(thinker, "Is 7 a prime number?", max_tokens=40, temperature=0),
        timeout=120,
    )
    assert r.status_code == 200, r.text
    message = r.json()["choices"][0]["message"]
    assert message["reasoning_content"], message
    for markup in ("<think>", "</think>"):
        assert markup not in message["reasoning_content"]
        assert markup not in (message["content"] or "")


def test_reasoning_streams_as_its_own_deltas(server: Server, thinker: str) -> None:
    body = chat_for(thinker, "Is 7 a prime number?", max_tokens=20, temperature=0, stream=True)
    with server.client.stream("POST", "/v1/chat/completions", json=body, timeout=120) as r:
        deltas = [e["choices"][0]["delta"] for e in sse_events(r) if e != "[DONE]" and e["choices"]]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    assert reasoning
    assert "<think>" not in reasoning


def test_template_kwargs_turn_thinking_off(server: Server, thinker: str) -> None:
    r = server.client.post(
        "/v1/chat/completions",
        json=chat_for(
            thinker,
            "What is the capital of France?",
            max_tokens=30,
            temperature=0,
            chat_template_kwargs={"enable_thinking": False},
        ),
        timeout=120,
    )
    assert r.status_code == 200, r.text
    message = r.json()["choices"][0]["message"]
    assert "reasoning_content" not in message
    assert "Paris" in message["content"]


def test_structured_answer_after_free_reasoning(server: Server, thinker: str) -> None:
    schema = {
        "type": "object",
        "properties": {"prime": {"type": "boolean"}},
        "required": ["prime"],
    }
    r = server.client.post(
        "/v1/chat/completions",
        json=chat_for(
            thinker,
            "Is 7 a prime number?",
            max_tokens=400,
            temperature=0,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema},
            },
        ),
        timeout=180,
    )
    assert r.status_code == 200, r.text
    message = r.json()["choices"][0]["message"]
    assert message["reasoning_content"]
    jsonschema.validate(json.loads(message["content"]), schema)
