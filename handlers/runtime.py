"""The handler's request loop: an inbox, engine threads, cancel, stats.

The main thread reads frames. ``Generate`` goes into the inbox; up to
``engine.parallel`` engine threads take work from it. ``Cancel`` removes a
queued request at once or flags a running one, which the engine sees at its
next step. Every request ends in exactly one ``Finished`` or ``Failed``.

A frame of a request that cannot be sent (too large even for shared memory,
or the spill failed: ``FrameTooLarge``) stops that request, which ends in
``Failed(kind="too_large")``; the engine thread goes on with the next one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import psutil

from handlers import logs, shm_out
from handlers.engine_protocol import Counting, Engine, EngineError, RequestEngine, TextEngine
from ipc.channel import BlockingChannel
from ipc.framing import FrameTooLarge, ProtocolError
from ipc.messages import (
    WORK_TYPES,
    Cancel,
    Delta,
    EngineCounters,
    Failed,
    Finished,
    Generate,
    GetStats,
    HandlerMessage,
    ReleaseShm,
    ServerMessage,
    Shutdown,
    Stats,
    TokenLogprob,
    ToolCallDelta,
)

log = logging.getLogger("handlers.runtime")

STOP_GRACE_SECONDS = 5.0


class Runtime:
    """Serves one connected server with one loaded engine."""

    def __init__(self, channel: BlockingChannel[ServerMessage], engine: Engine) -> None:
        self._channel = channel
        self._engine = engine
        self._cond = threading.Condition()
        self._inbox: deque[Any] = deque()
        self._running: set[int] = set()
        self._cancelled: set[int] = set()
        self._closing = False
        self._process = psutil.Process()
        self.tokens_generated = 0

    def serve(self) -> None:
        """Read and dispatch frames until the socket closes or ``Shutdown``."""
        workers = [
            threading.Thread(target=self._work, name=f"engine-{i}", daemon=True)
            for i in range(max(1, self._engine.parallel))
        ]
        for worker in workers:
            worker.start()
        try:
            self._read_loop()
        finally:
            with self._cond:
                self._closing = True
                self._cancelled.update(self._running)
                self._inbox.clear()
                self._cond.notify_all()
            for worker in workers:
                worker.join(STOP_GRACE_SECONDS / len(workers))
            shm_out.release_all()

    def _read_loop(self) -> None:
        while True:
            try:
                message = self._channel.receive()
            except (EOFError, ProtocolError, OSError):
                return  # the server went away: nothing left to serve
            if isinstance(message, WORK_TYPES):
                with self._cond:
                    self._inbox.append(message)
                    self._cond.notify()
            elif isinstance(message, Cancel):
                self._cancel(message.req_id)
            elif isinstance(message, GetStats):
                self._send(self._stats(message.req_id))
            elif isinstance(message, ReleaseShm):
                shm_out.release(message.name)
            elif isinstance(message, Shutdown):
                return

    def _cancel(self, req_id: int) -> None:
        with self._cond:
            queued = next((r for r in self._inbox if r.req_id == req_id), None)
            if queued is not None:
                self._inbox.remove(queued)
            elif req_id in self._running:
                self._cancelled.add(req_id)
                return
            else:
                return  # already finished: its last frame is on its way
        self._send(Finished(req_id=req_id, reason="cancelled"))

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._inbox and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                request = self._inbox.popleft()
                self._running.add(request.req_id)
            try:
                reply = self._run(request)
            finally:
                with self._cond:
                    self._running.discard(request.req_id)
                    self._cancelled.discard(request.req_id)
            try:
                self._channel.send(reply)
            except FrameTooLarge as exc:
                self._send(_too_large(request.req_id, exc))
            except OSError:
                pass  # the server is gone; the read loop ends the process

    def _run(self, request: Any) -> HandlerMessage:
        req_id: int = request.req_id
        unsendable: list[FrameTooLarge] = []

        def send(message: HandlerMessage) -> None:
            if unsendable:
                return  # the request is stopping: nothing more of it goes out
            try:
                self._channel.send(message)
            except FrameTooLarge as exc:
                unsendable.append(exc)
            except OSError:
                pass  # the server is gone; the read loop ends the process

        def should_stop() -> bool:
            return req_id in self._cancelled or bool(unsendable)

        logs.serving(request.request_id)
        started = time.perf_counter()
        log.debug("%s %d started", type(request).__name__, req_id)
        try:
            if isinstance(request, Generate):
                reply: HandlerMessage = self._generate(request, send, should_stop)
            else:
                reply = cast(RequestEngine, self._engine).handle(request, send, should_stop)
        except EngineError as exc:
            reply = Failed(req_id=req_id, kind=exc.kind, message=str(exc), param=exc.param)  # type: ignore[arg-type]
        except Exception as exc:
            log.exception("%s %d failed", type(request).__name__, req_id)
            reply = Failed(req_id=req_id, kind="internal", message=f"{type(exc).__name__}: {exc}")
        log.debug(
            "%s %d ended with %s in %.1f ms",
            type(request).__name__, req_id, type(reply).__name__,
            (time.perf_counter() - started) * 1000,
        )  # fmt: skip
        logs.serving("")
        if unsendable:
            return _too_large(req_id, unsendable[0])
        return reply

    def _generate(
        self,
        request: Generate,
        send: Callable[[HandlerMessage], None],
        should_stop: Callable[[], bool],
    ) -> Finished:
        req_id = request.req_id

        def emit(
            text: str,
            n_tokens: int,
            *,
            reasoning: str = "",
            tool_calls: list[ToolCallDelta] | None = None,
            logprobs: list[TokenLogprob] | None = None,
        ) -> None:
            send(
                Delta(
                    req_id=req_id,
                    text=text,
                    n_tokens=n_tokens,
                    reasoning=reasoning,
                    tool_calls=tool_calls or [],
                    logprobs=logprobs or [],
                )
            )

        if not hasattr(self._engine, "generate"):  # the server checks model types first
            raise EngineError(f"a {self._engine.name} model cannot generate text", param="model")
        finished = cast(TextEngine, self._engine).generate(request, emit, should_stop)
        with self._cond:
            self.tokens_generated += finished.usage.completion_tokens
        return finished

    def _stats(self, req_id: int) -> Stats:
        return Stats(
            req_id=req_id,
            pid=os.getpid(),
            rss_bytes=self._process.memory_info().rss,
            tokens_generated=self.tokens_generated,
            memory=self._engine.memory(),
            counters=self._engine.counters()
            if isinstance(self._engine, Counting)
            else EngineCounters(),
        )

    def _send(self, message: HandlerMessage) -> None:
        try:
            self._channel.send(message)
        except FrameTooLarge:
            pass  # only small frames come here (Stats, Finished of a cancel)
        except OSError:
            pass  # the server is gone; the read loop ends the process


def _too_large(req_id: int, exc: FrameTooLarge) -> Failed:
    return Failed(
        req_id=req_id, kind="too_large", message=f"The answer is too large to send: {exc}"
    )
