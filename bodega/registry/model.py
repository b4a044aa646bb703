"""One served model: its handler process, its admission queue, its restarts.

Every service reaches a handler through ``Model.stream`` (all frames of a
request) or ``Model.call`` (its last frame): admission, then the request under
a fresh id, then the frames, with a ``Failed`` turned into the error
``bodega.errors`` maps it to. A handler that dies is restarted with backoff
according to the model's ``restart`` policy (``supervisor.py``); requests that
arrive or wait meanwhile wait for it, up to ``queue_timeout``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Literal, TypeVar

import msgspec
import trio

from bodega.errors import (
    BodegaError,
    HandlerFailed,
    ModelRestarting,
    ModelUnavailable,
    QueueFull,
    error_from_failed,
)
from bodega.hub.download import DownloadJob
from bodega.settings import ModelSpec
from bodega.telemetry.metrics import Metrics, Observation, Totals, observe, outcome_of
from bodega.telemetry.prompts import PromptLog
from ipc.messages import TERMINAL_TYPES, Failed, Finished, HandlerMessage, WorkMessage

from .admission import Admission
from .handler import HANDLER_COMMAND, HandlerProcess
from .priority import current_priority
from .supervisor import RestartSupervision
from .warmup import warm_up

ModelStatus = Literal[
    "downloading", "loading", "running", "restarting", "failed", "stopping", "stopped"
]
T = TypeVar("T", bound=HandlerMessage)
log = logging.getLogger(__name__)
DRAIN_POLL = 0.05  # seconds between looks at a draining handler


class ModelState(msgspec.Struct, kw_only=True):
    """A snapshot of a model's process state, as admin and health report it."""

    status: ModelStatus
    pid: int | None
    engine: str
    context_length: int | None
    created_at: int
    restarts: int = 0
    last_exit_code: int | None = None
    last_restart_at: int | None = None
    error: str | None = None
    # While downloading: percent of the model's bytes in the cache.
    progress: float | None = None


class Model(RestartSupervision):
    """A registered model: its spec, its current handler process and its queue
    (its restarts: ``supervisor.RestartSupervision``)."""

    def __init__(
        self,
        spec: ModelSpec,
        socket_path: Callable[[], Path],
        engine: str,
        load_timeout: float,
        command: tuple[str, ...] = HANDLER_COMMAND,
    ) -> None:
        self.spec = spec
        # What the handler loads: ``spec`` with model_path resolved to local
        # files (a repo id becomes its cache snapshot; see ``use_files``).
        self.handler_spec = spec
        # The hub repo the files come from, and its download while in flight.
        self.repo_id: str | None = None
        self.download: DownloadJob | None = None
        self.last_used = time.monotonic()
        self.metrics: Metrics | None = None
        self.totals = Totals()
        self.log_prompts = False
        self._warming = False
        self.warmup_seconds: float | None = None
        self.estimated_mb = 0
        self.admission = Admission(
            spec.max_concurrency, spec.queue_size, spec.queue_timeout, spec.priority_aging
        )
        self._socket_path = socket_path
        self._engine = engine
        self._load_timeout = load_timeout
        self._command = command
        self.handler = HandlerProcess(spec, socket_path(), engine, command)
        self.created_at = self.handler.created_at
        self._restarting = False
        self._failed_for_good: str | None = None
        self._failures: deque[float] = deque()
        self.restarts = 0
        self.last_exit_code: int | None = None
        self.last_restart_at: int | None = None
        # Set and replaced whenever the model's state changes.
        self._changed = trio.Event()

    @property
    def footprint_mb(self) -> int:
        """What the model takes: its estimate, or its measured memory when
        larger (RSS + accelerator memory, or llama.cpp's own buffers, which
        count memory on any device, when they are more)."""
        stats = self.handler.last_stats
        if stats is None:
            return self.estimated_mb
        engine = stats.memory
        buffers = engine.model_buffer_bytes + engine.kv_cache_bytes + engine.compute_buffer_bytes
        measured = max(stats.rss_bytes + engine.active_bytes, buffers) // (1024 * 1024)
        return max(self.estimated_mb, measured)

    @property
    def busy(self) -> bool:
        """Requests are running or waiting."""
        stats = self.admission.stats
        return stats.running + stats.queued > 0

    @property
    def evictable(self) -> bool:
        """May be unloaded to make room: not pinned, idle, running or failed."""
        return not self.spec.pinned and not self.busy and self.status in ("running", "failed")

    def expires_in(self, now: float) -> float | None:
        """Seconds until ``keep_alive`` unloads the model (None: never)."""
        keep_alive = self.spec.keep_alive
        if keep_alive is None or keep_alive < 0 or self.spec.pinned:
            return None
        return self.last_used + keep_alive - now

    def use_files(self, path: str, engine: str, device: str | None = None) -> None:
        """Load from ``path`` with ``engine`` (once a repo's files are in the
        cache), on ``device`` when the spec names none."""
        self.handler_spec = msgspec.structs.replace(
            self.spec, model_path=path, device=self.spec.device or device
        )
        self._engine = engine
        self.handler = HandlerProcess(self.handler_spec, self._socket_path(), engine, self._command)

    @property
    def status(self) -> ModelStatus:
        """``restarting`` from a crash until the new handler's ``Ready``."""
        if self._failed_for_good is not None and self.handler.status != "running":
            return "failed"  # its download, load or warm-up failed, or it gave up
        if self.download is not None and not self.download.done.is_set():
            return "downloading"
        if self._warming:
            return "loading"
        status = self.handler.status
        if self._restarting or (status == "failed" and self._restart_pending()):
            return "restarting"
        return status

    def _restart_pending(self) -> bool:
        """The handler died and the supervisor has not given up on it (yet)."""
        return self._failed_for_good is None and self.spec.restart != "never"

    @property
    def error(self) -> str | None:
        """Why the model is failed (the last handler's exit and stderr tail)."""
        return self._failed_for_good or self.handler.error

    def state(self) -> ModelState:
        """A snapshot of the process state."""
        handler = self.handler
        return ModelState(
            status=self.status,
            pid=handler.pid,
            engine=handler.engine or self.spec.engine,
            context_length=handler.context_length,
            created_at=self.created_at,
            restarts=self.restarts,
            last_exit_code=self.last_exit_code,
            last_restart_at=self.last_restart_at,
            error=self.error if self.status != "running" else None,
            progress=self.download.progress.progress
            if self.download is not None and self.status == "downloading"
            else None,
        )

    # --- requests ----------------------------------------------------------

    async def stream(
        self, message: WorkMessage, priority: int | None = None
    ) -> AsyncGenerator[HandlerMessage, None]:
        """Run ``message`` and yield its frames, the terminal one last.

        Admitted at ``priority`` (None: the request's, ``priority.py``). A
        ``Failed`` frame is raised as its ``BodegaError``; leaving early
        (client gone) cancels the work in the handler.
        """
        watch = observe(
            self.metrics, self.totals, self.id, self.state().engine, self.spec.model_type
        )
        prompts = PromptLog(self.id, message) if self.log_prompts else None
        outcome = "cancelled"
        try:
            level = current_priority() if priority is None else priority
            async for frame in self._stream(message, watch, level):
                if prompts is not None:
                    prompts.frame(frame)
                if isinstance(frame, TERMINAL_TYPES):
                    outcome = "ok"  # callers may stop reading at the last frame
                yield frame
        except BodegaError as exc:
            outcome = outcome_of(exc)
            raise
        finally:
            self.last_used = time.monotonic()  # idle from here (keep_alive counts from it)
            if watch is not None:
                watch.finished(outcome)
            if prompts is not None:
                prompts.finished()

    async def _stream(
        self, message: WorkMessage, watch: Observation | None, priority: int
    ) -> AsyncGenerator[HandlerMessage, None]:
        try:
            slot = await self.admission.acquire(priority)
        except QueueFull as exc:
            if self.status == "restarting":
                raise ModelRestarting(
                    f"The model {self.id!r} is restarting and its queue is full.",
                    retry_after=exc.retry_after,
                ) from None
            raise
        if watch is not None:
            watch.admitted()
        async with slot:
            handler = await self._running_handler()
            async with handler.request(message) as frames:
                async for frame in frames:
                    if isinstance(frame, Failed):
                        raise error_from_failed(frame)
                    if watch is not None:
                        watch.frame(frame)
                    yield frame
                    if isinstance(frame, TERMINAL_TYPES):
                        return
        raise HandlerFailed("The model stopped answering before the request finished.")

    async def call(self, message: WorkMessage, expect: type[T], priority: int | None = None) -> T:
        """Run ``message`` and return its last frame, which must be an ``expect``."""
        async with aclosing(self.stream(message, priority)) as frames:
            async for frame in frames:
                if isinstance(frame, expect):
                    return frame
                if isinstance(frame, Finished):
                    break  # cancelled behind our back: the handler is stopping
        raise HandlerFailed("The model stopped answering before the request finished.")

    async def _running_handler(self) -> HandlerProcess:
        """The handler, once running: a restart in progress is waited for."""
        with trio.move_on_after(self.spec.queue_timeout):
            while self.status in ("loading", "restarting"):
                await self._changed.wait()
        handler = self.handler
        if handler.status == "running":
            return handler
        if self.status in ("loading", "restarting"):
            raise ModelUnavailable(
                f"The model {self.id!r} is still restarting after "
                f"{self.spec.queue_timeout:g} s (queue_timeout)."
            )
        detail = f": {self.error}" if self.error else ""
        raise ModelUnavailable(f"The model {self.id!r} is {self.status}{detail}")

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # --- lifecycle ---------------------------------------------------------

    async def start(self, nursery: trio.Nursery) -> None:
        """Load the model's first handler; a failure here is a load error, not retried."""
        try:
            await self.handler.start(nursery, self._load_timeout)
            try:
                await self._warm_up(self.handler)
            except BaseException:
                with trio.CancelScope(shield=True):
                    await self.handler.stop()
                raise
        finally:
            self._notify()
        nursery.start_soon(self._supervise, nursery)

    async def _warm_up(self, handler: HandlerProcess) -> None:
        """One tiny request before the model counts as running (``warmup``)."""
        if not self.spec.warmup:
            return
        self._warming = True
        try:
            seconds = await warm_up(handler, self.spec.model_type)
        finally:
            self._warming = False
        if seconds is not None:
            self.warmup_seconds = seconds

    def fail(self, reason: str) -> None:
        """The model could not be prepared or loaded; it stays listed as failed."""
        self._failed_for_good = reason
        self._notify()

    async def settled(self) -> None:
        """Wait until the model is neither downloading nor loading."""
        while self.status in ("downloading", "loading"):
            await self._changed.wait()

    async def stop(self) -> None:
        """Stop the handler for good; a pending restart is abandoned."""
        self._restarting = False
        self._notify()
        await self.handler.stop()

    @asynccontextmanager
    async def replacing(self, spec: ModelSpec, drain_timeout: float) -> AsyncIterator[None]:
        """Swap in ``spec`` (a reload): the model is ``restarting`` throughout,
        so requests admitted meanwhile wait for the new handler (up to
        ``queue_timeout``) while those running on the old one finish first
        (up to ``drain_timeout``; later ones get an error). The body starts
        the new handler."""
        self._restarting = True
        self._notify()
        try:
            old = self.handler
            with trio.move_on_after(drain_timeout):
                while old.in_flight:
                    await trio.sleep(DRAIN_POLL)
            old.fail_pending("the model was reloaded before this request finished")
            await old.stop()
            self.spec = self.handler_spec = spec
            self.admission.resize(spec.max_concurrency, spec.queue_size, spec.queue_timeout)
            self.admission.aging = spec.priority_aging
            yield
        finally:
            self._restarting = False
            self._notify()
