"""handlers.runtime.Runtime in-process over a socketpair, with a fake engine.

The engine is a test double on purpose: the thing under test is the runtime
(inbox, engine threads, cancel, stats, shutdown), not a model. The fake engine
emits one token per step; in paced mode each step waits for a permit the test
hands out, and it checks ``should_stop()`` between getting the permit and
emitting, as a real engine checks between decode steps.

Ordering without sleeps: the runtime's reader thread handles frames in order,
so a ``GetStats`` round trip (``barrier``) proves every earlier frame, e.g. a
``Cancel``, was handled.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections.abc import Callable, Iterator
from itertools import count

import pytest

from handlers.engine_protocol import ContextLengthExceeded, Emit, EngineError, ShouldStop
from handlers.runtime import Runtime
from ipc import shm
from ipc.channel import BlockingChannel
from ipc.framing import DEFAULT_MAX_FRAME
from ipc.messages import (
    Cancel,
    Delta,
    EngineMemory,
    Failed,
    Finished,
    Generate,
    GetStats,
    HandlerMessage,
    ServerMessage,
    Shutdown,
    Stats,
    Usage,
)

TIMEOUT = 10.0  # seconds any single wait may take before the test fails
HUGE = "x" * (DEFAULT_MAX_FRAME + 1)  # a message holding it cannot travel in a frame

pytestmark = pytest.mark.timeout(60)


class FakeEngine:
    """Emits ``max_tokens`` tokens ``"t0 ", "t1 ", ...``; ``prompt`` picks a behaviour.

    prompt "engine-error" / "too-long" / "boom": raise EngineError /
    ContextLengthExceeded / RuntimeError. prompt "until-stopped": emit nothing,
    wait until ``should_stop()`` (as an engine in a long decode step would).
    prompt "huge": one Delta larger than a frame, then ``max_tokens`` more
    tokens unless told to stop; "huge-boom": raise an error whose message is
    larger than a frame.
    """

    name = "fake"
    context_length = 4096

    def __init__(self, parallel: int = 1, paced: bool = False) -> None:
        self.parallel = parallel
        self.paced = paced
        self._lock = threading.Lock()
        self._gates: dict[int, threading.Semaphore] = {}
        self._started: dict[int, threading.Event] = {}
        self._open = threading.Event()  # set at teardown: no more waiting
        self.seen: list[int] = []
        self.stop_seen: set[int] = set()
        self.active = 0
        self.max_active = 0

    def gate(self, req_id: int) -> threading.Semaphore:
        with self._lock:
            return self._gates.setdefault(req_id, threading.Semaphore(0))

    def started(self, req_id: int) -> threading.Event:
        with self._lock:
            return self._started.setdefault(req_id, threading.Event())

    def allow(self, req_id: int, steps: int = 1) -> None:
        """Let a paced request take ``steps`` more steps."""
        self.gate(req_id).release(steps)

    def open_all(self) -> None:
        """Unblock everything (teardown)."""
        self._open.set()
        with self._lock:
            gates = list(self._gates.values())
        for gate in gates:
            gate.release()  # wakes a waiter; later steps see _open

    def _wait_step(self, req_id: int) -> None:
        if not self.paced or self._open.is_set():
            return
        if not self.gate(req_id).acquire(timeout=TIMEOUT):
            raise TimeoutError(f"test never allowed a step of request {req_id}")

    def generate(self, request: Generate, emit: Emit, should_stop: ShouldStop) -> Finished:
        req_id = request.req_id
        with self._lock:
            self.seen.append(req_id)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        self.started(req_id).set()
        try:
            return self._generate(request, emit, should_stop)
        finally:
            with self._lock:
                self.active -= 1

    def _generate(self, request: Generate, emit: Emit, should_stop: ShouldStop) -> Finished:
        req_id = request.req_id
        if request.prompt == "engine-error":
            raise EngineError("temperature must be >= 0", param="temperature")
        if request.prompt == "too-long":
            raise ContextLengthExceeded("prompt has 9000 tokens", param="prompt")
        if request.prompt == "boom":
            raise RuntimeError("kaboom")
        if request.prompt == "huge-boom":
            raise RuntimeError(HUGE)
        if request.prompt == "huge":
            emit(HUGE, 1)
        if request.prompt == "until-stopped":
            stopped = threading.Event()
            while not should_stop():
                if stopped.wait(0.005) or self._open.is_set():
                    break
            self.stop_seen.add(req_id)
            return Finished(req_id=req_id, reason="cancelled", usage=Usage(prompt_tokens=3))
        emitted = 0
        for i in range(request.max_tokens or 0):
            self._wait_step(req_id)
            if should_stop():
                self.stop_seen.add(req_id)
                return Finished(
                    req_id=req_id,
                    reason="cancelled",
                    usage=Usage(prompt_tokens=3, completion_tokens=emitted),
                )
            emit(f"t{i} ", 1)
            emitted += 1
        return Finished(
            req_id=req_id, reason="length", usage=Usage(prompt_tokens=3, completion_tokens=emitted)
        )

    def memory(self) -> EngineMemory:
        return EngineMemory(weights_bytes=1234)

    def close(self) -> None:
        pass


class Harness:
    """A Runtime serving in a thread, and the server's end of its socket."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        ours, theirs = socket.socketpair()
        ours.settimeout(TIMEOUT)
        self.client: BlockingChannel[HandlerMessage] = BlockingChannel(ours, HandlerMessage)
        self.handler_channel: BlockingChannel[ServerMessage] = BlockingChannel(
            theirs, ServerMessage
        )
        self.runtime = Runtime(self.handler_channel, engine)
        self.serve_error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name="runtime-serve", daemon=True)
        self.thread.start()
        self._stats_ids = count(1_000_000)

    def _serve(self) -> None:
        try:
            self.runtime.serve()
        except BaseException as exc:  # reported by the test
            self.serve_error = exc

    def send(self, message: ServerMessage) -> None:
        self.client.send(message)

    def receive(self) -> HandlerMessage:
        return self.client.receive()  # socket timeout bounds it

    def finish(self, req_id: int) -> tuple[list[Delta], Finished | Failed]:
        """Receive ``req_id``'s frames up to its end; all frames must be its own."""
        deltas: list[Delta] = []
        while True:
            message = self.receive()
            assert getattr(message, "req_id", None) == req_id, message
            if isinstance(message, Delta):
                deltas.append(message)
            else:
                assert isinstance(message, Finished | Failed), message
                return deltas, message

    def barrier(self) -> tuple[list[HandlerMessage], Stats]:
        """Round-trip a GetStats; returns the frames that arrived before it."""
        stats_id = next(self._stats_ids)
        self.send(GetStats(req_id=stats_id))
        before: list[HandlerMessage] = []
        while True:
            message = self.receive()
            if isinstance(message, Stats) and message.req_id == stats_id:
                return before, message
            before.append(message)

    def serve_returns(self) -> bool:
        self.thread.join(TIMEOUT)
        return not self.thread.is_alive()

    def close(self) -> None:
        self.engine.open_all()
        self.client.close()
        self.thread.join(TIMEOUT)
        self.handler_channel.close()


@pytest.fixture
def make_harness() -> Iterator[Callable[..., Harness]]:
    harnesses: list[Harness] = []

    def make(parallel: int = 1, paced: bool = False) -> Harness:
        harness = Harness(FakeEngine(parallel=parallel, paced=paced))
        harnesses.append(harness)
        return harness

    yield make
    for harness in harnesses:
        harness.close()
        assert not harness.thread.is_alive(), "Runtime.serve did not return at teardown"
        assert harness.serve_error is None, harness.serve_error


def gen(req_id: int, tokens: int = 3, prompt: str = "go") -> Generate:
    return Generate(req_id=req_id, prompt=prompt, max_tokens=tokens)


def wait(event: threading.Event) -> None:
    assert event.wait(TIMEOUT), "timed out waiting for the engine"


def test_streams_deltas_then_one_finished(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    h.send(gen(1, tokens=5))
    deltas, end = h.finish(1)
    assert [d.text for d in deltas] == ["t0 ", "t1 ", "t2 ", "t3 ", "t4 "]
    assert all(d.n_tokens == 1 for d in deltas)
    assert isinstance(end, Finished)
    assert end.reason == "length"
    assert end.usage.completion_tokens == 5
    before, _ = h.barrier()
    assert before == []  # nothing after the Finished


def test_zero_token_request_still_finishes(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    h.send(gen(1, tokens=0))
    deltas, end = h.finish(1)
    assert deltas == []
    assert isinstance(end, Finished) and end.usage.completion_tokens == 0


def test_queued_requests_run_after_running_ones(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(parallel=1, paced=True)
    e = h.engine
    h.send(gen(1, tokens=2))
    h.send(gen(2, tokens=2))
    wait(e.started(1))
    h.barrier()  # request 2 is in the inbox now
    assert e.seen == [1]  # one engine thread, busy with request 1
    e.allow(1, 2)
    deltas, end = h.finish(1)
    assert len(deltas) == 2 and isinstance(end, Finished)
    wait(e.started(2))
    e.allow(2, 2)
    deltas, end = h.finish(2)
    assert len(deltas) == 2 and isinstance(end, Finished) and end.reason == "length"
    assert e.seen == [1, 2]
    assert e.max_active == 1


def test_parallel_bounds_engine_threads(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(parallel=2, paced=True)
    e = h.engine
    for req_id in (1, 2, 3):
        h.send(gen(req_id, tokens=1))
    wait(e.started(1))
    wait(e.started(2))
    h.barrier()
    assert sorted(e.seen) == [1, 2]
    assert not e.started(3).is_set()
    e.allow(1)
    assert isinstance(h.finish(1)[1], Finished)
    wait(e.started(3))  # the freed engine thread takes the queued request
    e.allow(2)
    e.allow(3)
    ends = {}
    for _ in range(4):  # one Delta and one Finished each, interleaved
        message = h.receive()
        if isinstance(message, Finished):
            ends[message.req_id] = message
    assert set(ends) == {2, 3}
    assert e.max_active == 2


def test_cancel_queued_request(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(parallel=1, paced=True)
    e = h.engine
    h.send(gen(1, tokens=1))
    wait(e.started(1))
    h.send(gen(2, tokens=1))
    h.send(Cancel(req_id=2))
    # Answered at once, while request 1 still holds the only engine thread.
    message = h.receive()
    assert message == Finished(req_id=2, reason="cancelled")
    e.allow(1)
    deltas, end = h.finish(1)
    assert len(deltas) == 1 and isinstance(end, Finished) and end.reason == "length"
    # The worker loops round; the cancelled request is gone for good.
    h.send(gen(3, tokens=1))
    wait(e.started(3))
    e.allow(3)
    assert isinstance(h.finish(3)[1], Finished)
    before, _ = h.barrier()
    assert before == []  # no second end frame for request 2
    assert e.seen == [1, 3]


def test_cancel_running_request_stops_at_next_step(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(paced=True)
    e = h.engine
    h.send(gen(1, tokens=1000))
    e.allow(1, 3)
    for i in range(3):
        message = h.receive()
        assert isinstance(message, Delta) and message.text == f"t{i} "
    h.send(Cancel(req_id=1))
    before, _ = h.barrier()  # the Cancel was handled
    assert before == []  # a running request is not answered by the reader
    e.allow(1, 100)  # plenty of steps: the engine must stop at the first
    deltas, end = h.finish(1)
    assert deltas == []
    assert isinstance(end, Finished)
    assert end.reason == "cancelled"
    assert end.usage.completion_tokens == 3
    assert e.stop_seen == {1}
    before, _ = h.barrier()
    assert before == []


def test_cancel_flag_does_not_leak_to_a_reused_req_id(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(paced=True)
    e = h.engine
    h.send(gen(1, tokens=1000))
    wait(e.started(1))
    h.send(Cancel(req_id=1))
    h.barrier()
    e.allow(1)
    assert h.finish(1)[1] == Finished(
        req_id=1, reason="cancelled", usage=Usage(prompt_tokens=3, completion_tokens=0)
    )
    e.paced = False
    h.send(gen(1, tokens=2))
    deltas, end = h.finish(1)
    assert len(deltas) == 2 and isinstance(end, Finished) and end.reason == "length"


def test_cancel_unknown_or_finished_is_ignored(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    h.send(Cancel(req_id=999))
    before, _ = h.barrier()
    assert before == []
    h.send(gen(1, tokens=2))
    _, end = h.finish(1)
    assert isinstance(end, Finished) and end.reason == "length"
    h.send(Cancel(req_id=1))
    h.send(Cancel(req_id=1))
    before, _ = h.barrier()
    assert before == []
    # Still serving.
    h.send(gen(2, tokens=1))
    assert isinstance(h.finish(2)[1], Finished)


def test_engine_error_becomes_failed(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    h.send(gen(1, prompt="engine-error"))
    deltas, end = h.finish(1)
    assert deltas == []
    assert end == Failed(
        req_id=1, kind="invalid_request", message="temperature must be >= 0", param="temperature"
    )
    h.send(gen(2, prompt="too-long"))
    _, end = h.finish(2)
    assert end == Failed(
        req_id=2, kind="context_length_exceeded", message="prompt has 9000 tokens", param="prompt"
    )


def test_unexpected_exception_becomes_internal_and_serving_goes_on(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness()
    h.send(gen(1, prompt="boom"))
    deltas, end = h.finish(1)
    assert deltas == []
    assert isinstance(end, Failed)
    assert end.kind == "internal"
    assert "RuntimeError" in end.message and "kaboom" in end.message
    assert end.param is None
    # The engine thread survived the exception.
    h.send(gen(2, tokens=2))
    deltas, end = h.finish(2)
    assert len(deltas) == 2 and isinstance(end, Finished)


def test_stats(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    _, stats = h.barrier()
    assert stats.pid == os.getpid()
    assert stats.rss_bytes > 0
    assert stats.tokens_generated == 0
    assert stats.memory == EngineMemory(weights_bytes=1234)
    h.send(gen(1, tokens=5))
    h.finish(1)
    h.send(gen(2, tokens=3))
    h.finish(2)
    h.send(gen(3, prompt="boom"))  # failed requests count nothing
    h.finish(3)
    h.send(GetStats(req_id=77))
    answer = h.receive()
    assert isinstance(answer, Stats)
    assert answer.req_id == 77
    assert answer.tokens_generated == 8
    assert answer.rss_bytes > 0


def test_stats_answered_while_engine_busy(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(paced=True)
    h.send(gen(1, tokens=1))
    wait(h.engine.started(1))
    before, stats = h.barrier()  # the reader is not blocked by the engine
    assert before == [] and stats.tokens_generated == 0
    h.engine.allow(1)
    assert isinstance(h.finish(1)[1], Finished)


def test_shutdown_returns_from_serve(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    h.send(gen(1, tokens=1))
    h.finish(1)
    h.send(Shutdown())
    assert h.serve_returns()
    assert h.serve_error is None


def test_socket_eof_returns_from_serve(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    h.barrier()
    h.client.sock.shutdown(socket.SHUT_WR)
    assert h.serve_returns()
    assert h.serve_error is None


def test_garbage_frame_returns_from_serve(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    h.client.sock.sendall(b"\x00\x00\x00\x03abc")
    assert h.serve_returns()
    assert h.serve_error is None


@pytest.mark.parametrize("how", ["shutdown", "eof"])
def test_ending_serve_stops_running_and_drops_queued(
    make_harness: Callable[..., Harness], how: str
) -> None:
    h = make_harness(parallel=1, paced=True)
    e = h.engine
    h.send(gen(1, prompt="until-stopped"))
    h.send(gen(2, tokens=1))
    wait(e.started(1))
    h.barrier()
    if how == "shutdown":
        h.send(Shutdown())
    else:
        h.client.sock.shutdown(socket.SHUT_WR)
    assert h.serve_returns()
    assert e.stop_seen == {1}  # the running request was told to stop
    assert e.seen == [1]  # the queued one never ran
    # The running request still ended with exactly one frame, before serve returned.
    assert h.receive() == Finished(req_id=1, reason="cancelled", usage=Usage(prompt_tokens=3))


def test_reply_larger_than_a_frame_travels_by_shared_memory(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness()
    h.send(gen(1, tokens=2, prompt="huge"))
    deltas, end = h.finish(1)
    assert [d.text for d in deltas] == [HUGE, "t0 ", "t1 "]
    assert isinstance(end, Finished) and end.usage.completion_tokens == 2
    h.send(gen(2, prompt="huge-boom"))
    _, failed = h.finish(2)
    assert isinstance(failed, Failed) and failed.message == f"RuntimeError: {HUGE}"
    h.send(gen(3, tokens=1))
    assert isinstance(h.finish(3)[1], Finished)


def test_reply_that_cannot_spill_fails_that_request_only(
    make_harness: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(data: object, owner_pid: int | None = None) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shm, "spill", full)
    h = make_harness()
    h.send(gen(1, tokens=50, prompt="huge"))
    deltas, end = h.finish(1)
    assert deltas == []  # the huge Delta could not go, and nothing after it
    assert isinstance(end, Failed) and end.kind == "too_large"
    assert "No space left on device" in end.message
    assert h.engine.stop_seen == {1}  # the engine was stopped at its next step
    # The last frame itself too large: still one Failed, and the thread lives on.
    h.send(gen(2, prompt="huge-boom"))
    _, end = h.finish(2)
    assert isinstance(end, Failed) and end.kind == "too_large"
    h.send(gen(3, tokens=2))
    deltas, end = h.finish(3)
    assert [d.text for d in deltas] == ["t0 ", "t1 "] and isinstance(end, Finished)
