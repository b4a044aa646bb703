"""GET /metrics after real traffic: parsed with prometheus_client's parser,
checked with ``promtool check metrics``, counters moved by what was sent."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Server, chat_body, silence_wav, sse_events

LM = "smollm2-135m"


def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as (name, sorted labels) -> value."""
    reply = server.client.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """The sum over the samples of ``name`` whose labels include ``labels``."""
    return sum(
        v for (n, have), v in samples.items() if n == name and set(labels.items()) <= set(have)
    )


def test_counters_and_histograms_move_with_traffic(server: Server) -> None:
    before = scrape(server)
    reply = server.client.post(
        "/v1/chat/completions", json=chat_body("Hi", model=LM, max_tokens=6), timeout=120
    )
    assert reply.status_code == 200
    usage = reply.json()["usage"]
    with server.client.stream(
        "POST",
        "/v1/chat/completions",
        json=chat_body(
            "Hello", model=LM, max_tokens=5, stream=True, stream_options={"include_usage": True}
        ),
        timeout=120,
    ) as stream:
        events = list(sse_events(stream))
    streamed = next(e for e in events if isinstance(e, dict) and e.get("usage"))["usage"]
    embedded = server.client.post(
        "/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": "a b c"}
    )
    assert embedded.status_code == 200
    after = scrape(server)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("bodega_time_to_first_token_seconds_count", model=LM, engine="llamacpp") == 2
    assert moved("bodega_e2e_request_latency_seconds_count", model=LM) == 2
    assert moved("bodega_request_queue_time_seconds_count", model=LM) == 2
    assert moved("bodega_inter_token_latency_seconds_count", model=LM) >= 2
    assert (
        moved("bodega_prompt_tokens_total", model=LM)
        == usage["prompt_tokens"] + streamed["prompt_tokens"]
    )
    assert moved("bodega_generation_tokens_total", model=LM) == (
        usage["completion_tokens"] + streamed["completion_tokens"]
    )
    assert moved("bodega_model_requests_total", model=LM, outcome="ok") == 2
    assert (
        moved("bodega_http_requests_total", endpoint="/v1/chat/completions", status="200", model=LM)
        == 2
    )
    assert (
        moved("bodega_prompt_tokens_total", model="all-minilm-l6-v2", model_type="embeddings")
        == (embedded.json()["usage"]["prompt_tokens"])
    )
    files = {"file": ("silence.wav", silence_wav(), "audio/wav")}
    heard = server.client.post(
        "/v1/audio/transcriptions", data={"model": "whisper-tiny.en"}, files=files, timeout=120
    )
    assert heard.status_code == 200
    ratios = scrape(server)
    assert 0 <= value(ratios, "bodega_prompt_cache_hit_ratio", model=LM) <= 1
    assert value(ratios, "bodega_audio_real_time_factor", model="whisper-tiny.en") > 0
    assert value(ratios, "bodega_audio_seconds_total", model="whisper-tiny.en") >= 1.0
    # Gauges from the handlers' Stats, one per model.
    for model in (LM, "all-minilm-l6-v2", "whisper-tiny.en"):
        assert value(after, "bodega_model_rss_bytes", model=model) > 10_000_000
        assert value(after, "bodega_model_up", model=model, status="running") == 1
        assert ("bodega_num_requests_running", ()) not in after  # always labelled
        assert value(after, "bodega_num_requests_waiting", model=model) == 0


def test_rejected_and_cancelled_are_counted(server: Server) -> None:
    assert server.load("metrics-tight", max_concurrency=1, queue_size=0).status_code == 201
    try:
        before = scrape(server)
        started, release = threading.Event(), threading.Event()

        def slow() -> None:
            body = chat_body(
                "Count to a hundred", model="metrics-tight", max_tokens=200, stream=True
            )
            with server.client.stream("POST", "/v1/chat/completions", json=body, timeout=120) as s:
                for _ in s.iter_lines():
                    started.set()
                    release.wait(60)
                    break  # leave early: cancelled by the client

        thread = threading.Thread(target=slow)
        thread.start()
        assert started.wait(60)
        rejected = server.client.post(
            "/v1/chat/completions", json=chat_body("Hi", model="metrics-tight", max_tokens=2)
        )
        release.set()
        thread.join(60)
        assert rejected.status_code == 429

        def delta(outcome: str) -> float:
            name, labels = (
                "bodega_model_requests_total",
                {"model": "metrics-tight", "outcome": outcome},
            )
            return value(scrape(server), name, **labels) - value(before, name, **labels)

        deadline = time.monotonic() + 10  # the server sees the client leave a moment later
        while delta("cancelled") < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert delta("cancelled") == 1 and delta("rejected") == 1
        after = scrape(server)
        assert value(after, "bodega_http_requests_total", model="metrics-tight", status="429") == 1
    finally:
        server.unload("metrics-tight")


@pytest.fixture
def exposition(server: Server) -> Iterator[str]:
    server.client.post("/v1/chat/completions", json=chat_body("Hi", max_tokens=2), timeout=120)
    yield server.client.get("/metrics").text


def test_promtool_accepts_the_exposition(exposition: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is missing: apt-get install prometheus")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bodega_time_to_first_token_seconds" in exposition


def test_request_ids(server: Server) -> None:
    given = server.client.get("/health", headers={"X-Request-ID": "trace-42 <script>"})
    assert given.headers["x-request-id"] == "trace-42script"
    made = server.client.get("/health").headers["x-request-id"]
    assert len(made) == 32 and int(made, 16) >= 0
    long = server.client.get("/health", headers={"X-Request-ID": "a" * 500})
    assert long.headers["x-request-id"] == "a" * 128
    body = chat_body("Hi", max_tokens=2, stream=True)
    with server.client.stream(
        "POST", "/v1/chat/completions", json=body, headers={"X-Request-ID": "s1"}
    ) as s:
        assert s.headers["x-request-id"] == "s1"
        assert list(sse_events(s))[-1] == "[DONE]"
    error = server.client.post(
        "/v1/chat/completions", json={"model": "nope"}, headers={"X-Request-ID": "e1"}
    )
    assert error.status_code == 400 and error.headers["x-request-id"] == "e1"


def test_readiness(server: Server) -> None:
    reply = server.client.get("/health/ready")
    assert reply.status_code == 200
    assert reply.json()["status"] == "ready"
    assert {LM, "all-minilm-l6-v2", "whisper-tiny.en"} <= set(reply.json()["loaded_models"])
