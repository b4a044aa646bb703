"""One model's handler subprocess, seen from the server.

The server listens on a Unix socket, spawns ``python -m handlers``, accepts its
connection, says ``Hello`` and waits for ``Ready``. One reader task then routes
every frame to the request it belongs to. If the socket breaks, every pending
request gets a ``Failed``, the process is reaped and ``exited`` is set; the
model decides whether to restart it (bodega.registry.model). The handler's
stderr passes through to the server's, and its tail is kept for error reports.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import msgspec
import trio

from bodega.errors import (
    HandlerFailed,
    ModelLoadFailed,
    ModelUnavailable,
    load_error_from_failed,
)
from bodega.settings import ModelSpec
from bodega.telemetry.context import current_request_id
from catalog.options import LoadOptions, load_options
from ipc.channel import TrioChannel
from ipc.framing import ProtocolError
from ipc.messages import (
    PROTOCOL_VERSION,
    TERMINAL_TYPES,
    Cancel,
    Failed,
    GetStats,
    HandlerMessage,
    Hello,
    Ready,
    ReleaseShm,
    ServerMessage,
    ShmRef,
    Shutdown,
    Stats,
    WorkMessage,
)

from .handler_env import handler_env

Status = Literal["loading", "running", "failed", "stopping", "stopped"]
# Frames buffered per request before the client is deemed too slow to keep up.
STREAM_BUFFER = 4096
CANCEL_DEADLINE = 1.0
STATS_TIMEOUT = 2.0
STDERR_TAIL_BYTES = 2048
# The handler program; it takes ``--socket PATH --spec JSON``.
HANDLER_COMMAND = (sys.executable, "-m", "handlers")


def load_spec(spec: ModelSpec, engine: str) -> LoadOptions:
    """What the handler loads: the LoadOptions part of ``spec``, id and engine resolved."""
    return load_options(spec, model_id=spec.id, engine=engine)


class HandlerProcess:
    """Spawns, talks to and stops one handler subprocess."""

    def __init__(
        self,
        spec: ModelSpec,
        socket_path: Path,
        engine: str,
        command: tuple[str, ...] = HANDLER_COMMAND,
    ) -> None:
        self.spec = spec
        self.command = command
        self.socket_path = socket_path
        self.status: Status = "loading"
        self.error: str | None = None
        self.created_at = int(time.time())
        self.pid: int | None = None
        self.context_length: int | None = spec.context_length
        self.engine = engine
        self.last_stats: Stats | None = None
        self._process: trio.Process | None = None
        self._channel: TrioChannel[HandlerMessage] | None = None
        self._streams: dict[int, trio.MemorySendChannel[HandlerMessage]] = {}
        self._stats_waiters: dict[int, trio.MemorySendChannel[Stats]] = {}
        self._ids = itertools.count(1)
        self._nursery: trio.Nursery | None = None
        self.returncode: int | None = None
        # Set once the process is gone, whoever ended it.
        self.exited = trio.Event()
        self._stderr_tail = b""

    # --- lifecycle -------------------------------------------------------

    async def start(self, nursery: trio.Nursery, load_timeout: float, hold: float = 0.0) -> None:
        """Spawn the handler and wait until its model is loaded. ``hold`` keeps
        the model from loading for that many seconds (a restart's backoff)
        while the new process imports its engine."""
        listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        try:
            await listener.bind(str(self.socket_path))
            listener.listen(1)
            self._process = await trio.lowlevel.open_process(
                [
                    *self.command,
                    "--socket",
                    str(self.socket_path),
                    "--spec",
                    msgspec.json.encode(load_spec(self.spec, self.engine)).decode(),
                ],
                stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=handler_env(self.engine),
            )
            self.pid = self._process.pid
            self._check_not_stopped()
            assert self._process.stderr is not None
            nursery.start_soon(self._pump_stderr, self._process.stderr)
            with trio.move_on_after(load_timeout + hold) as scope:
                ready = await self._connect_and_handshake(listener, trio.current_time() + hold)
            if scope.cancelled_caught:
                raise ModelLoadFailed(
                    f"model {self.spec.id!r} did not load within {load_timeout:g} s"
                )
            self._check_not_stopped()
        except BaseException:
            if self.status == "loading":  # not unloaded meanwhile
                self.status = "failed"
            await self._kill()
            self._mark_exited()
            raise
        finally:
            listener.close()
            self.socket_path.unlink(missing_ok=True)
        self.context_length = ready.context_length
        self.engine = ready.engine
        self.status = "running"
        self._nursery = nursery
        nursery.start_soon(self._read_loop)

    def _check_not_stopped(self) -> None:
        if self.status != "loading":
            raise ModelLoadFailed(f"model {self.spec.id!r} was unloaded while loading")

    async def _connect_and_handshake(
        self, listener: trio.socket.SocketType, release_at: float
    ) -> Ready:
        assert self._process is not None
        process = self._process

        exit_code: int | None = None

        async def accept() -> None:
            conn, _ = await listener.accept()
            self._channel = TrioChannel(trio.SocketStream(conn), HandlerMessage)
            await trio.sleep_until(release_at)  # the handler loads on Hello
            nursery.cancel_scope.cancel()

        async def watch_exit() -> None:
            nonlocal exit_code
            exit_code = await process.wait()
            nursery.cancel_scope.cancel()

        # Neither child raises: an error inside the nursery would reach the
        # caller wrapped in an ExceptionGroup, past its `except BodegaError`.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept)
            nursery.start_soon(watch_exit)
        if exit_code is not None:
            raise ModelLoadFailed(
                f"model handler exited with code {exit_code} before loading{self._tail_note()}"
            )
        assert self._channel is not None
        try:
            await self._channel.send(
                Hello(protocol_version=PROTOCOL_VERSION, server_pid=os.getpid())
            )
            first = await self._channel.receive()
        except (trio.EndOfChannel, trio.BrokenResourceError, ProtocolError) as exc:
            code = await process.wait()
            raise ModelLoadFailed(
                f"model handler for {self.spec.id!r} exited while loading (code {code})"
                + self._tail_note()
            ) from exc
        if isinstance(first, Failed):
            raise load_error_from_failed(first, self.spec.id)
        if not isinstance(first, Ready) or first.protocol_version != PROTOCOL_VERSION:
            raise ModelLoadFailed(f"model handler for {self.spec.id!r} broke the handshake")
        return first

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered in full."""
        return len(self._streams)

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask the handler to exit; kill it if it does not within ``timeout``."""
        if self.status in ("stopping", "stopped"):
            return
        loading, self.status = self.status == "loading", "stopping"
        with trio.CancelScope(shield=True):
            if self._channel is not None and not loading:  # a loading one has nothing to finish
                with trio.move_on_after(timeout / 2):
                    try:
                        await self._channel.send(Shutdown())
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
            if self._process is not None and not loading:
                with trio.move_on_after(timeout):
                    await self._process.wait()
            await self._kill()
            self.fail_pending("the model was unloaded")
            self.status = "stopped"
            self._mark_exited()

    def stderr_tail(self) -> str:
        """The last lines the handler wrote to stderr."""
        text = self._stderr_tail.decode("utf-8", "replace")
        return text.split("\n", 1)[1] if len(self._stderr_tail) == STDERR_TAIL_BYTES else text

    def _tail_note(self) -> str:
        tail = self.stderr_tail().strip()
        return f"; its stderr ended with: {tail[-500:]}" if tail else ""

    def _mark_exited(self) -> None:
        if self._process is not None:
            self.returncode = self._process.returncode
        self.exited.set()

    async def _pump_stderr(self, stream: trio.abc.ReceiveStream) -> None:
        """Pass the handler's stderr through and keep its tail."""
        async with stream:
            while True:
                try:
                    chunk = await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if not chunk:
                    return
                self._stderr_tail = (self._stderr_tail + chunk)[-STDERR_TAIL_BYTES:]
                try:
                    os.write(2, chunk)
                except OSError:
                    pass  # no stderr to pass it to; the tail is still kept

    async def _kill(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            with trio.CancelScope(shield=True):
                await self._process.wait()
        if self._channel is not None:
            with trio.CancelScope(shield=True):
                await self._channel.aclose()

    # --- frames ----------------------------------------------------------

    async def _read_loop(self) -> None:
        assert self._channel is not None
        reason = "the model handler closed its connection"
        try:
            while True:
                message = await self._channel.receive()
                self._route(message)
        except trio.EndOfChannel:
            pass
        except ProtocolError as exc:
            reason = f"the model handler broke the protocol ({exc})"
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        if self.status in ("stopping", "stopped"):
            return
        self.status = "failed"
        if self._process is not None:
            # A dead process is reaped at once; the wait only names its exit code.
            with trio.move_on_after(1):
                code = await self._process.wait()
                reason = f"the model handler exited unexpectedly (exit code {code})"
            await self._kill()
        self.error = reason
        self.fail_pending(reason)
        self._mark_exited()

    def _route(self, message: HandlerMessage) -> None:
        if isinstance(message, Stats):
            self.last_stats = message
            waiter = self._stats_waiters.pop(message.req_id, None)
            if waiter is not None:
                waiter.send_nowait(message)
            return
        req_id = getattr(message, "req_id", None)
        if req_id is None:
            return
        stream = self._streams.get(req_id)
        if stream is None:
            return  # a late frame of a request we gave up on
        terminal = isinstance(message, TERMINAL_TYPES)
        if terminal:
            del self._streams[req_id]
        try:
            stream.send_nowait(message)
        except trio.WouldBlock:
            # The client is not reading; drop it rather than stall every request.
            # Its consumer sees the stream end without a last frame.
            self._streams.pop(req_id, None)
            stream.close()
            if self._nursery is not None:
                self._nursery.start_soon(self._send_cancel, req_id)
        except trio.BrokenResourceError:
            pass  # the consumer left; its own exit sends the Cancel
        if terminal:
            stream.close()

    async def _send_cancel(self, req_id: int) -> None:
        if self._channel is None:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(CANCEL_DEADLINE):
            try:
                await self._channel.send(Cancel(req_id=req_id))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    def fail_pending(self, reason: str) -> None:
        """End every request in flight with a ``Failed`` saying ``reason``."""
        for req_id, stream in list(self._streams.items()):
            try:
                stream.send_nowait(Failed(req_id=req_id, kind="internal", message=reason))
            except (trio.WouldBlock, trio.BrokenResourceError):
                pass
            stream.close()
        self._streams.clear()
        for waiter in self._stats_waiters.values():
            waiter.close()
        self._stats_waiters.clear()

    # --- requests --------------------------------------------------------

    async def _send(self, message: ServerMessage) -> None:
        if self._channel is None or self.status != "running":
            raise ModelUnavailable(f"model {self.spec.id!r} is {self.status}")
        try:
            await self._channel.send(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise HandlerFailed(f"model {self.spec.id!r} is not answering") from exc

    @asynccontextmanager
    async def request(
        self, message: WorkMessage
    ) -> AsyncIterator[trio.MemoryReceiveChannel[HandlerMessage]]:
        """Send ``message`` under a fresh ``req_id`` and yield the stream of its frames.

        The stream ends with one of ``TERMINAL_TYPES`` (``Finished``, ``Failed``,
        ...). Leaving the block before that (client gone, error) cancels the
        work in the handler.
        """
        req_id = next(self._ids)
        send, receive = trio.open_memory_channel[HandlerMessage](STREAM_BUFFER)
        self._streams[req_id] = send
        try:
            await self._send(
                msgspec.structs.replace(message, req_id=req_id, request_id=current_request_id())
            )
            yield receive
        finally:
            if self._streams.pop(req_id, None) is not None:
                await self._send_cancel(req_id)

    async def release_shm(self, ref: ShmRef) -> None:
        """Tell the handler its shared-memory payload ``ref`` was read."""
        with trio.CancelScope(shield=True), trio.move_on_after(CANCEL_DEADLINE):
            try:
                await self._send(ReleaseShm(name=ref.name))
            except (HandlerFailed, ModelUnavailable):
                pass  # the handler is gone; its segments die with the server's sweep

    async def fetch_stats(self) -> Stats | None:
        """Fresh process and engine figures, or the last known ones."""
        if self.status != "running":
            return self.last_stats
        req_id = next(self._ids)
        send, receive = trio.open_memory_channel[Stats](1)
        self._stats_waiters[req_id] = send
        try:
            with trio.move_on_after(STATS_TIMEOUT):
                await self._send(GetStats(req_id=req_id))
                async with receive:
                    return await receive.receive()
        except (HandlerFailed, ModelUnavailable, trio.EndOfChannel):
            pass
        finally:
            self._stats_waiters.pop(req_id, None)
        return self.last_stats
