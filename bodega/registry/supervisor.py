"""Restarts of a model's handler, per its ``restart`` policy (``Model`` mixes this in).

A handler that dies is replaced after 1 s, 2 s, 4 s ... capped at 60 s;
``RESTART_FAILURE_LIMIT`` failures within ``RESTART_WINDOW`` leave the model
failed with the last exit code and stderr tail. Requests that wait meanwhile
wait in ``Model._running_handler``, up to ``queue_timeout``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import trio

from bodega.errors import BodegaError
from bodega.settings import ModelSpec

from .handler import HandlerProcess

log = logging.getLogger(__name__)

RESTART_BACKOFF_FIRST = 1.0
RESTART_BACKOFF_CAP = 60.0
# This many failures within the window and the model stays failed.
RESTART_FAILURE_LIMIT = 5
RESTART_WINDOW = 600.0


class RestartSupervision:
    """The supervisor task of one model and its restart attempts."""

    spec: ModelSpec
    handler_spec: ModelSpec
    handler: HandlerProcess
    restarts: int
    last_exit_code: int | None
    last_restart_at: int | None
    _restarting: bool
    _failed_for_good: str | None
    _failures: deque[float]
    _socket_path: Callable[[], Path]
    _engine: str
    _command: tuple[str, ...]
    _load_timeout: float

    @property
    def id(self) -> str:
        """The id clients use."""
        return self.spec.id

    def _notify(self) -> None:
        raise NotImplementedError

    async def _warm_up(self, handler: HandlerProcess) -> None:
        raise NotImplementedError

    async def _supervise(self, nursery: trio.Nursery) -> None:
        """Restart the handler whenever it dies, as the ``restart`` policy says.
        A bug in here fails this model, never the server it runs in."""
        try:
            await self._supervise_forever(nursery)
        except Exception as exc:
            log.exception("supervising model %r failed", self.id)
            self._restarting = False
            self._failed_for_good = f"its supervisor failed: {type(exc).__name__}: {exc}"
            self._notify()

    async def _supervise_forever(self, nursery: trio.Nursery) -> None:
        while True:
            handler = self.handler
            await handler.exited.wait()
            # Stopped (unloaded), or replaced by a reload: not a crash.
            if handler.status in ("stopping", "stopped") or handler is not self.handler:
                return
            self.last_exit_code = handler.returncode
            if not self._should_restart(self.last_exit_code):
                self._failed_for_good = handler.error or "the model handler exited"
                self._notify()
                return
            if not await self._restart(nursery):
                return

    def _should_restart(self, code: int | None) -> bool:
        policy = self.spec.restart
        return policy == "always" or (policy == "on-failure" and code != 0)

    async def _restart(self, nursery: trio.Nursery) -> bool:
        """Start new handlers with backoff until one runs; False once given up."""
        self._restarting = True
        self._notify()
        try:
            while True:
                now = time.monotonic()
                self._failures.append(now)
                while self._failures and now - self._failures[0] > RESTART_WINDOW:
                    self._failures.popleft()
                if len(self._failures) >= RESTART_FAILURE_LIMIT:
                    self._give_up()
                    return False
                delay = min(
                    RESTART_BACKOFF_CAP, RESTART_BACKOFF_FIRST * 2 ** (len(self._failures) - 1)
                )
                attempt = trio.current_time()
                if await self._try_start(nursery, hold=delay):
                    return True
                # One that died early still waits out its backoff: no crash loop.
                await trio.sleep_until(attempt + delay)
                if not self._restarting:
                    return False  # unloaded meanwhile
        finally:
            self._restarting = False
            self._notify()

    async def _try_start(self, nursery: trio.Nursery, hold: float) -> bool:
        """Start a new handler whose model loads after ``hold`` seconds (the
        backoff, during which it imports its engine)."""
        handler = HandlerProcess(
            self.handler_spec, self._socket_path(), self._engine, self._command
        )
        self.handler = handler
        try:
            await handler.start(nursery, self._load_timeout, hold=hold)
            await self._warm_up(handler)
        except BodegaError as exc:
            handler.error = exc.message
            self.last_exit_code = handler.returncode
            return False
        self.restarts += 1
        self.last_restart_at = int(time.time())
        return True

    def _give_up(self) -> None:
        handler = self.handler
        tail = handler.stderr_tail().strip()
        self._failed_for_good = (
            f"{handler.error or 'the model handler failed'}; gave up after "
            f"{RESTART_FAILURE_LIMIT} failures within {RESTART_WINDOW / 60:g} minutes"
            + (f"; its stderr ended with: {tail[-500:]}" if tail else "")
        )
