"""Chat and completions behave the same on llama.cpp and on mlx-lm.

The MLX model is the embedded GGUF, converted on load (and cached).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bodega.registry.handler_env import openblas_library
from bodega.settings import embedded_lm_path
from tests.helpers import SYSTEM, Server, long_completion, queue_stats, sse_events, wait_until

LLAMA = "smollm2-135m"
MLX = "smollm2-135m-mlx"


def chat(model: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [SYSTEM, {"role": "user", "content": content}], **extra}


def test_chat_answers_paris(server: Server, model: str) -> None:
    r = server.client.post(
        "/v1/chat/completions", json=chat(model, "What is the capital of France?", temperature=0)
    )
    body = r.json()
    assert r.status_code == 200, body
    assert body["model"] == model
    assert "Paris" in body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] > 10


def test_stream_answers_paris(server: Server, model: str) -> None:
    body = chat(
        model,
        "What is the capital of France?",
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    with server.client.stream("POST", "/v1/chat/completions", json=body) as r:
        events = list(sse_events(r))
    assert events[-1] == "[DONE]"
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"])
    assert "Paris" in text
    assert events[-2]["usage"]["completion_tokens"] > 3


def test_completion_keeps_leading_space_and_stop(server: Server, model: str) -> None:
    body = {"model": model, "prompt": "Count: 1, 2, 3,", "max_tokens": 30, "temperature": 0}
    plain = server.client.post("/v1/completions", json={**body, "max_tokens": 6}).json()
    assert plain["choices"][0]["text"].startswith(" 4,")
    assert plain["choices"][0]["finish_reason"] == "length"
    assert plain["usage"]["completion_tokens"] == 6
    stopped = server.client.post("/v1/completions", json={**body, "stop": [" 6"]}).json()
    assert stopped["choices"][0]["text"] == " 4, 5,"
    assert stopped["choices"][0]["finish_reason"] == "stop"


def test_engines_agree_on_a_greedy_answer(server: Server, mlx_model: str) -> None:
    body = chat(LLAMA, "What is the capital of France?", temperature=0, max_tokens=8)
    llama = server.client.post("/v1/chat/completions", json=body).json()
    mlx = server.client.post("/v1/chat/completions", json={**body, "model": mlx_model}).json()
    llama_text = llama["choices"][0]["message"]["content"]
    mlx_text = mlx["choices"][0]["message"]["content"]
    assert llama_text.split()[:4] == mlx_text.split()[:4]


def test_repeated_prefix_hits_the_prompt_cache(server: Server, model: str) -> None:
    body = chat(model, "Name a colour of the rainbow.", temperature=0, max_tokens=3)
    server.client.post("/v1/chat/completions", json=body)
    again = server.client.post("/v1/chat/completions", json=body).json()
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] > 10


def _stream_text(server: Server, body: dict[str, Any], out: dict[int, str], i: int) -> None:
    with server.client.stream("POST", "/v1/completions", json=body) as r:
        out[i] = "".join(
            e["choices"][0]["text"] for e in sse_events(r) if e != "[DONE]" and e["choices"]
        )


def test_four_concurrent_streams_are_all_correct(server: Server, mlx_model: str) -> None:
    body = {"model": mlx_model, "prompt": "Count: 1, 2, 3,", "max_tokens": 8, "temperature": 0}
    expected = server.client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    out: dict[int, str] = {}
    threads = [
        threading.Thread(target=_stream_text, args=(server, {**body, "stream": True}, out, i))
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert out == {i: expected for i in range(4)}


def test_cancel_one_of_four_streams(server: Server, mlx_model: str) -> None:
    body = {
        "model": mlx_model,
        "prompt": "Count: 1, 2, 3,",
        "max_tokens": 10,
        "temperature": 0,
        "stream": True,
    }
    out: dict[int, str] = {}
    threads = [threading.Thread(target=_stream_text, args=(server, body, out, i)) for i in range(3)]
    for t in threads:
        t.start()
    with server.client.stream("POST", "/v1/completions", json=long_completion(mlx_model)) as r:
        events = sse_events(r)
        next(events)
        next(events)  # leave mid-stream
    for t in threads:
        t.join(120)
    assert len(out) == 3 and len(set(out.values())) == 1
    assert next(iter(out.values())).startswith(" 4, 5")
    wait_until(lambda: queue_stats(server, mlx_model)["running"] == 0, timeout=30)


def test_mlx_memory_is_reported(server: Server, mlx_model: str) -> None:
    memory = server.model_info(mlx_model)["memory"]
    assert memory["metal_active_mb"] > 10
    assert memory["metal_peak_mb"] >= memory["metal_active_mb"]
    assert memory["total_mb"] >= memory["rss_mb"]


def test_speculative_decoding_equals_plain_greedy(server: Server, mlx_model: str) -> None:
    r = server.load(
        "mlx-spec", engine="mlx", draft_model_path=embedded_lm_path(), num_draft_tokens=3
    )
    assert r.status_code == 201, r.text
    try:
        body = chat(mlx_model, "What is the capital of France?", temperature=0, max_tokens=16)
        plain = server.client.post("/v1/chat/completions", json=body).json()
        spec = server.client.post("/v1/chat/completions", json={**body, "model": "mlx-spec"}).json()
        assert spec["choices"][0]["message"]["content"] == plain["choices"][0]["message"]["content"]
        assert spec["usage"]["completion_tokens"] == plain["usage"]["completion_tokens"]
        # The draft is the model itself: nearly every proposal is accepted.
        exposition = server.client.get("/metrics").text
        accepted = _sample(exposition, "bodega_spec_decode_num_accepted_tokens_total", "mlx-spec")
        rate = _sample(exposition, "bodega_spec_decode_acceptance_rate", "mlx-spec")
        assert accepted > 0 and 0.5 < rate <= 1.0
    finally:
        server.unload("mlx-spec")


def _sample(exposition: str, name: str, model: str) -> float:
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("model") == model:
                return float(sample.value)
    raise AssertionError(f"no {name} for {model}")


def test_repo_not_in_hf_cache_is_404(server: Server) -> None:
    r = server.load("absent", engine="mlx", model_path="nobody/absent-model")
    assert r.status_code == 404, r.text
    assert "download" in r.json()["error"]["message"]


def test_bad_chat_template_file_is_400(server: Server, tmp_path: Any) -> None:
    template = tmp_path / "bad.jinja"
    template.write_text("{% for m in messages %}{{ m.content }")
    r = server.load("bad-template", engine="mlx", chat_template_file=str(template))
    assert r.status_code == 400, r.text
    assert "Jinja" in r.json()["error"]["message"]


def test_lora_adapter_changes_output_and_scale_zero_does_not(
    server: Server, mlx_model: str, tmp_path: Any
) -> None:
    from tests.tiny_lora import mlx_folder, write_adapter

    adapter = write_adapter(mlx_folder(tmp_path / "base"), tmp_path / "adapter")
    body = chat(mlx_model, "What is the capital of France?", temperature=0, max_tokens=8)
    base = server.client.post("/v1/chat/completions", json=body).json()
    base_text = base["choices"][0]["message"]["content"]
    for model_id, scales, same in (("lora-on", None, False), ("lora-off", [0.0], True)):
        options: dict[str, Any] = {"engine": "mlx", "lora_paths": [str(adapter)]}
        if scales is not None:
            options["lora_scales"] = scales
        r = server.load(model_id, **options)
        assert r.status_code == 201, r.text
        try:
            out = server.client.post(
                "/v1/chat/completions", json={**body, "model": model_id}
            ).json()
            assert "choices" in out, out
            assert (out["choices"][0]["message"]["content"] == base_text) is same
        finally:
            server.unload(model_id)


def test_draft_with_another_tokenizer_is_400(server: Server, tmp_path: Any) -> None:
    import json

    from handlers.convert.gguf_to_mlx import convert_gguf

    draft = convert_gguf(embedded_lm_path(), tmp_path / "draft")
    tokenizer = json.loads((draft / "tokenizer.json").read_text())
    extra = {"content": "<|extra|>", "single_word": False, "lstrip": False, "rstrip": False}
    tokenizer["added_tokens"].append(
        {"id": len(tokenizer["model"]["vocab"]), **extra, "normalized": False, "special": True}
    )
    (draft / "tokenizer.json").write_text(json.dumps(tokenizer))
    r = server.load("bad-draft", engine="mlx", draft_model_path=str(draft))
    assert r.status_code == 400, r.text
    assert "tokenizer" in r.json()["error"]["message"]


@pytest.mark.skipif(
    not Path("/proc/self/maps").exists() or openblas_library() is None,
    reason="needs Linux with Debian's libopenblas0-pthread",
)
def test_mlx_handler_runs_with_openblas(server: Server, mlx_model: str) -> None:
    pid = server.model_info(mlx_model)["pid"]
    assert "openblas" in Path(f"/proc/{pid}/maps").read_text()
    llama_pid = server.model_info(LLAMA)["pid"]
    assert "openblas" not in Path(f"/proc/{llama_pid}/maps").read_text()


def test_mlx_single_slot_answers_and_reuses_its_prompt_cache(server: Server) -> None:
    assert server.load("mlx-one", engine="mlx", max_concurrency=1).status_code == 201
    try:
        body = chat("mlx-one", "What is the capital of France?", temperature=0, max_tokens=12)
        first = server.client.post("/v1/chat/completions", json=body).json()
        assert "Paris" in first["choices"][0]["message"]["content"]
        again = server.client.post("/v1/chat/completions", json=body).json()
        assert (
            again["choices"][0]["message"]["content"] == first["choices"][0]["message"]["content"]
        )
        assert again["usage"]["prompt_tokens_details"]["cached_tokens"] > 10
        stopped = server.client.post(
            "/v1/completions",
            json={
                "model": "mlx-one",
                "prompt": "Count: 1, 2, 3,",
                "max_tokens": 30,
                "stop": " 6",
                "temperature": 0,
            },
        ).json()
        assert stopped["choices"][0]["text"] == " 4, 5,"
    finally:
        server.unload("mlx-one")
