"""The rules both language-model engines share, and the one set of sampling
defaults as each engine receives it."""

from __future__ import annotations

import pytest

from handlers.engine_protocol import ContextLengthExceeded, EngineError
from handlers.lm.llamacpp_engine import sampling_fields
from handlers.lm.mlx_engine import penalty_settings, sampler_settings
from handlers.lm.request_checks import (
    PENALTY_WINDOW,
    check_logit_bias,
    eos_rules,
    finish_reason,
    token_budget,
)
from ipc.messages import ChatMessage, Generate, Sampling

CHAT = [ChatMessage(role="user", content="hi")]


def chat(**fields: object) -> Generate:
    return Generate(req_id=1, messages=CHAT, **fields)  # type: ignore[arg-type]


def test_unset_max_tokens_runs_to_the_end_of_the_context() -> None:
    assert token_budget(chat(), prompt_tokens=100, context_length=512) == 412


def test_max_tokens_beyond_the_context_is_capped_not_refused() -> None:
    assert token_budget(chat(max_tokens=10_000), 100, 512) == 412
    assert token_budget(chat(max_tokens=20), 100, 512) == 20


def test_the_prompt_must_leave_room_for_one_token() -> None:
    assert token_budget(chat(), prompt_tokens=511, context_length=512) == 1
    for prompt_tokens in (512, 600):
        with pytest.raises(ContextLengthExceeded) as info:
            token_budget(chat(max_tokens=5), prompt_tokens, 512)
        assert info.value.param == "messages"
        assert "512" in str(info.value)
    completion = Generate(req_id=1, prompt="x")
    with pytest.raises(ContextLengthExceeded) as info:
        token_budget(completion, 512, 512)
    assert info.value.param == "prompt"


def test_max_tokens_below_one_is_refused() -> None:
    with pytest.raises(EngineError) as info:
        token_budget(chat(max_tokens=0), 10, 512)
    assert info.value.param == "max_tokens"


def test_logit_bias_outside_the_vocabulary_is_refused() -> None:
    check_logit_bias({0: 1.0, 99: -1.0}, vocab_size=100)
    for token in (100, -1):
        with pytest.raises(EngineError) as info:
            check_logit_bias({token: 1.0}, vocab_size=100)
        assert info.value.param == "logit_bias"


def test_finish_reasons() -> None:
    assert finish_reason("length", cancelled=False, tool_calls=True) == "length"
    assert finish_reason("stop", cancelled=False, tool_calls=False) == "stop"
    assert finish_reason(None, cancelled=False, tool_calls=False) == "stop"
    assert finish_reason("stop", cancelled=False, tool_calls=True) == "tool_calls"
    assert finish_reason(None, cancelled=True, tool_calls=True) == "cancelled"


def test_eos_rules_apply_to_free_text_only() -> None:
    request = chat(ignore_eos=True, min_tokens=5)
    assert eos_rules(request, constrained=False) == (True, 5)
    assert eos_rules(request, constrained=True) == (False, 0)
    assert eos_rules(chat(), constrained=False) == (False, 0)


# --- the one set of defaults -------------------------------------------------


def test_llamacpp_gets_every_default_explicitly() -> None:
    fields = sampling_fields(Sampling())
    assert fields["temperature"] == 0.7
    assert fields["top_p"] == 1.0
    assert fields["top_k"] == 0  # off (llama.cpp's own default would be 40)
    assert fields["min_p"] == 0.0  # off (llama.cpp's own default would be 0.05)
    assert fields["presence_penalty"] == fields["frequency_penalty"] == 0.0
    assert fields["repeat_penalty"] == 1.0
    assert fields["repeat_last_n"] == PENALTY_WINDOW
    assert "seed" not in fields  # a fresh seed per request
    assert fields["samplers"] == ["penalties", "top_p", "min_p", "top_k", "temperature"]


def test_llamacpp_passes_the_values_it_is_given() -> None:
    sampling = Sampling(temperature=0.0, top_p=0.5, top_k=3, min_p=0.1, seed=9)
    fields = sampling_fields(sampling)
    assert (fields["temperature"], fields["top_p"], fields["top_k"], fields["min_p"]) == (
        0.0,
        0.5,
        3,
        0.1,
    )
    assert fields["seed"] == 9


def test_mlx_gets_the_same_defaults() -> None:
    assert sampler_settings(Sampling()) == {"temp": 0.7, "top_p": 1.0, "min_p": 0.0, "top_k": 0}
    penalties = penalty_settings(Sampling())
    assert penalties["repetition_penalty"] is None  # 1.0: no processor at all
    assert penalties["presence_penalty"] is None and penalties["frequency_penalty"] is None
    assert penalties["repetition_context_size"] == PENALTY_WINDOW
    assert penalty_settings(Sampling(repetition_penalty=1.3))["repetition_penalty"] == 1.3
