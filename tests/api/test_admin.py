"""Loading and unloading models at runtime through the admin API."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import Server


def test_loaded_models_shape(server: Server) -> None:
    body = server.client.get("/v1/admin/loaded-models").json()
    assert body["object"] == "list"
    assert body["total"] == len(body["data"])
    model = server.model_info("smollm2-135m")
    assert model["type"] == "lm"
    assert model["model_path"].endswith(".gguf")
    assert model["context_length"] == 8192
    assert model["status"] == "running"
    assert isinstance(model["created_at"], int)
    assert isinstance(model["pid"], int) and model["pid"] > 0
    memory = model["memory"]
    assert set(memory) == {
        "metal_active_mb",
        "metal_cache_mb",
        "metal_peak_mb",
        "rss_mb",
        "total_mb",
        "estimated_mb",
        "llamacpp_buffers",
    }
    assert set(memory["llamacpp_buffers"]) == {"model_mb", "kv_cache_mb", "compute_mb"}
    assert memory["rss_mb"] > 10
    assert memory["estimated_mb"] > 100  # weights, KV cache and runtime, estimated before loading
    assert memory["total_mb"] >= memory["rss_mb"]


def test_load_chat_unload(server: Server) -> None:
    hi = {"model": "current", "prompt": "Hi", "max_tokens": 1}
    current_before = server.client.post("/v1/completions", json=hi).json()["model"]
    r = server.load("extra-lm", context_length=512, max_concurrency=2, queue_size=3)
    assert r.status_code == 201, r.text
    assert r.json()["model"]["context_length"] == 512
    info = server.model_info("extra-lm")
    assert info["status"] == "running" and info["pid"] != server.model_info("smollm2-135m")["pid"]
    chat = server.client.post(
        "/v1/chat/completions",
        json={
            "model": "extra-lm",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 2,
        },
    )
    assert chat.status_code == 200 and chat.json()["model"] == "extra-lm"
    # the most recently loaded language model is "current"
    current = server.client.post(
        "/v1/completions", json={"model": "current", "prompt": "Hi", "max_tokens": 1}
    )
    assert current.json()["model"] == "extra-lm"
    long_prompt = server.client.post(
        "/v1/completions", json={"model": "extra-lm", "prompt": "word " * 600, "max_tokens": 1}
    )
    assert long_prompt.status_code == 400
    assert long_prompt.json()["error"]["code"] == "context_length_exceeded"

    assert server.load("extra-lm").status_code == 409
    r = server.unload("extra-lm")
    assert r.status_code == 200 and r.json() == {"status": "unloaded", "id": "extra-lm"}
    gone = server.client.post(
        "/v1/completions", json={"model": "extra-lm", "prompt": "Hi", "max_tokens": 1}
    )
    assert gone.status_code == 404
    assert server.unload("extra-lm").status_code == 404
    back = server.client.post(
        "/v1/completions", json={"model": "current", "prompt": "Hi", "max_tokens": 1}
    )
    assert back.json()["model"] == current_before


def test_missing_path_is_400(server: Server) -> None:
    r = server.client.post(
        "/v1/admin/load-model", json={"model_path": "/no/such/model.gguf", "model_id": "x"}
    )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "model_path"


def test_file_that_is_not_a_model_is_a_clear_load_error(server: Server, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 64)
    r = server.client.post(
        "/v1/admin/load-model", json={"model_path": str(bogus), "model_id": "bogus"}
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "model_load_failed"
    assert "bogus" in error["message"]
    ids = [m["id"] for m in server.client.get("/v1/admin/loaded-models").json()["data"]]
    assert "bogus" not in ids


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"tool_call_parser": "nonsense"}, "tool_call_parser"),
        ({"reasoning_parser": "nonsense"}, "reasoning_parser"),
        ({"lora_paths": ["/tmp/a"]}, "lora_paths"),
        ({"draft_model_path": "/tmp/d"}, "draft_model_path"),
        ({"trust_remote_code": True}, "trust_remote_code"),
        ({"quantize": 4}, "quantize"),
        ({"model_type": "image-generation", "engine": "llamacpp"}, "engine"),
        ({"engine": "vllm"}, "engine"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"context_length": "big"}, "context_length"),
        ({"colour": "red"}, "colour"),
        ({"chat_template_file": "/no/such.jinja"}, "chat_template_file"),
    ],
)
def test_options_that_cannot_be_honoured_are_refused(
    server: Server, options: dict[str, object], param: str
) -> None:
    r = server.load("refused", **options)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param
    assert param in error["message"] or param == "colour"


def test_chat_template_file_is_used(server: Server, tmp_path: Path) -> None:
    template = tmp_path / "t.jinja"
    template.write_text(
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "<|im_start|>assistant\nThe answer is"
    )
    r = server.load("templated", chat_template_file=str(template))
    assert r.status_code == 201, r.text
    try:
        out = server.client.post(
            "/v1/chat/completions",
            json={
                "model": "templated",
                "messages": [{"role": "user", "content": "Capital of France?"}],
                "max_tokens": 3,
                "temperature": 0,
            },
        ).json()
        # the template's prefill changes what the model says next
        assert out["usage"]["prompt_tokens"] > 5
    finally:
        server.unload("templated")
