"""Access-log lines (text and JSON), request ids in both, and ``--access-log off``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bodega.settings import embedded_lm_path
from tests.helpers import chat_body, start_server, stop_server


def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"models:\n  - model_path: {embedded_lm_path()}\n    model_id: lm\n")
    return path


def wait_for_line(log: Path, needle: str) -> str:
    """The first log line holding ``needle`` (the line is written as the response ends)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if needle in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line with {needle!r} in:\n{log.read_text()[-2000:]}")


def test_json_access_log_has_the_request_fields(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server = start_server("--config", str(config(tmp_path)), "--log-format", "json", log_path=log)
    try:
        reply = server.client.post(
            "/v1/chat/completions",
            json=chat_body("Hi", model="lm", max_tokens=3),
            headers={"X-Request-ID": "req-json-1"},
            timeout=120,
        )
        assert reply.status_code == 200
        usage = reply.json()["usage"]
        line = json.loads(wait_for_line(log, '"request_id": "req-json-1"'))
        assert line["logger"] == "bodega.access" and line["level"] == "INFO"
        assert line["method"] == "POST" and line["path"] == "/v1/chat/completions"
        assert line["status"] == 200 and line["model"] == "lm"
        assert line["tokens_in"] == usage["prompt_tokens"]
        assert line["tokens_out"] == usage["completion_tokens"]
        assert line["duration_ms"] > 0 and line["client"].startswith("127.0.0.1:")
        assert "Hi" not in json.dumps(line)  # no prompt text without --log-prompts
        for raw in log.read_text().splitlines():
            if raw.startswith("{"):
                json.loads(raw)  # every line of ours is one JSON object
    finally:
        stop_server(server)


def test_text_log_prompts_and_access_log_off(tmp_path: Path) -> None:
    log = tmp_path / "text.log"
    server = start_server("--config", str(config(tmp_path)), "--log-prompts", log_path=log)
    try:
        server.client.get("/v1/models", headers={"X-Request-ID": "req-text-1"})
        line = wait_for_line(log, "[req-text-1]")
        assert "bodega.access" in line and "GET /v1/models 200" in line
        body = chat_body("Tell me about zebras", model="lm", max_tokens=3)
        server.client.post("/v1/chat/completions", json=body, headers={"X-Request-ID": "p1"})
        assert "zebras" in wait_for_line(log, "bodega.prompts [p1]")
    finally:
        stop_server(server)
    quiet_log = tmp_path / "quiet.log"
    quiet = start_server(
        "--config", str(config(tmp_path)), "--access-log", "off", log_path=quiet_log
    )
    try:
        quiet.client.get("/v1/models", headers={"X-Request-ID": "req-quiet-1"})
        assert quiet.client.get("/health").status_code == 200
    finally:
        stop_server(quiet)
    assert "bodega.access" not in quiet_log.read_text()


def test_the_handler_logs_with_the_request_id(tmp_path: Path) -> None:
    log = tmp_path / "debug.log"
    server = start_server("--config", str(config(tmp_path)), "--log-level", "DEBUG", log_path=log)
    try:
        body = chat_body("Hi", model="lm", max_tokens=2)
        reply = server.client.post(
            "/v1/chat/completions", json=body, headers={"X-Request-ID": "trace-h1"}
        )
        assert reply.status_code == 200
        line = wait_for_line(log, "handler[lm] [trace-h1]")
        assert "Generate" in line and "started" in line
        wait_for_line(log, "bodega.access [trace-h1]")
    finally:
        stop_server(server)
