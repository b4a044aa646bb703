"""Two Bodega replicas behind a real HAProxy (docs/deploy/haproxy.cfg): one is
SIGKILLed under a steady stream of requests; after the health check notices,
every new request succeeds on the other, and streams running there go on."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bodega.settings import embedded_lm_path
from tests.helpers import ROOT, Server, chat_body, free_port, sse_events, start_server, stop_server


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[str, list[Server]]]:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("HAProxy is missing: apt-get install haproxy")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"models:\n  - model_path: {embedded_lm_path()}\n    model_id: lm\n    max_concurrency: 2\n"
    )
    servers = [start_server("--config", str(config)) for _ in range(2)]
    front = free_port()
    cfg = (ROOT / "docs/deploy/haproxy.cfg").read_text()
    for name, port in (("FRONT_PORT", front), ("PORT1", servers[0].url.rsplit(":", 1)[1]),
                       ("PORT2", servers[1].url.rsplit(":", 1)[1])):  # fmt: skip
        cfg = cfg.replace("{{" + name + "}}", str(port))
    (tmp_path / "haproxy.cfg").write_text(cfg)
    check = subprocess.run(
        [haproxy, "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    proxy = subprocess.Popen([haproxy, "-f", str(tmp_path / "haproxy.cfg")])
    url = f"http://127.0.0.1:{front}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                assert proxy.poll() is None, "HAProxy exited; see its stderr"
            time.sleep(0.2)
        yield url, servers
    finally:
        proxy.terminate()
        proxy.wait(10)
        for server in servers:
            stop_server(server)


def test_a_killed_replica_is_routed_around(replicas: tuple[str, list[Server]]) -> None:
    url, (doomed, survivor) = replicas
    client = httpx.Client(base_url=url, timeout=60)
    body = chat_body("Hi", model="lm", max_tokens=3)
    assert all(client.post("/v1/chat/completions", json=body).status_code == 200 for _ in range(4))

    # Two streams through the proxy: least connections puts one on each replica.
    long_body = chat_body("Tell me a long story", model="lm", max_tokens=64, stream=True)
    finished: list[bool] = []
    streaming = threading.Barrier(3)

    def stream() -> None:
        events: list[object] = []
        try:
            with client.stream("POST", "/v1/chat/completions", json=long_body) as s:
                for event in sse_events(s):
                    if not events:
                        streaming.wait(30)
                    events.append(event)
        except httpx.HTTPError:
            pass  # the stream on the killed replica breaks
        finished.append(bool(events) and events[-1] == "[DONE]" and len(events) > 10)

    runners = [threading.Thread(target=stream) for _ in range(2)]
    for runner in runners:
        runner.start()
    streaming.wait(30)
    doomed.process.kill()
    doomed.process.wait()
    time.sleep(1.5)  # the health check's interval (500 ms), with room
    statuses = [client.post("/v1/chat/completions", json=body).status_code for _ in range(10)]
    for runner in runners:
        runner.join(60)
    assert statuses == [200] * 10
    assert True in finished  # the survivor's stream went on to its end
    assert survivor.model_info("lm")["status"] == "running"

    # Streams go through the proxy as they are made (not buffered to the end):
    # the events spread over most of the request's time, however fast the decode.
    # Buffered, they would all arrive within a few milliseconds of each other.
    story = {**long_body, "max_tokens": 128, "ignore_eos": True}
    started = time.monotonic()
    with client.stream("POST", "/v1/chat/completions", json=story) as s:
        arrivals = [time.monotonic() for _ in sse_events(s)]
    assert len(arrivals) > 100
    assert arrivals[-1] - arrivals[0] > 0.25 * (arrivals[-1] - started)
