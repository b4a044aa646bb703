"""Warm-up at load: one tiny request before a model is reported running."""

from __future__ import annotations

from tests.helpers import Server


def test_a_loaded_model_was_warmed_up(server: Server) -> None:
    for model_id in ("smollm2-135m", "all-minilm-l6-v2", "whisper-tiny.en"):
        info = server.model_info(model_id)
        assert info["status"] == "running" and info["warmup_ms"] > 0, info


def test_warmup_can_be_turned_off(server: Server) -> None:
    assert server.load("cold-lm", warmup=False).status_code == 201
    try:
        info = server.model_info("cold-lm")
        assert info["status"] == "running" and "warmup_ms" not in info
    finally:
        server.unload("cold-lm")
