"""``python -m handlers --socket PATH --spec JSON``: one model's process.

Spawned by the server, never by hand. It connects to the server's socket,
answers ``Hello`` with ``Ready`` once the model is loaded (or ``Failed``), then
serves requests until the socket closes, and exits.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import NoReturn

import msgspec

from catalog.options import LoadOptions
from handlers import logs
from handlers.engine_loader import import_engine, open_engine
from handlers.engine_protocol import Engine, LoadError
from handlers.runtime import Runtime
from ipc.channel import BlockingChannel
from ipc.messages import PROTOCOL_VERSION, Failed, Hello, Ready, ServerMessage


def _die_with_parent(poll_seconds: float = 1.0) -> None:
    """Exit when the server process dies, even while a model is loading.

    (PR_SET_PDEATHSIG would tie us to the spawning *thread*, which trio's
    thread cache retires, so we watch the parent pid instead.)
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(
    argv: list[str] | None = None,
    open_engine: Callable[[LoadOptions], Engine] = open_engine,
    warm_up: Callable[[LoadOptions], object] | None = import_engine,
) -> int:
    """Run one handler process; returns the exit status. ``open_engine`` loads
    the model (tests pass a fake engine to run the real runtime without one);
    ``warm_up`` imports what it needs before the server says go."""
    parser = argparse.ArgumentParser(prog="python -m handlers")
    parser.add_argument("--socket", required=True, help="the server's Unix socket")
    parser.add_argument("--spec", required=True, help="catalog.options.LoadOptions as JSON")
    args = parser.parse_args(argv)
    _die_with_parent()
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` dumps every thread's stack
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when we stop

    if warm_up is not None:
        _warm(warm_up, args.spec)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(args.socket)
    channel: BlockingChannel[ServerMessage] = BlockingChannel(sock, ServerMessage)

    hello = channel.receive()
    if not isinstance(hello, Hello) or hello.protocol_version != PROTOCOL_VERSION:
        got = getattr(hello, "protocol_version", type(hello).__name__)
        channel.send(
            Failed(
                req_id=0,
                kind="protocol_error",
                message=f"protocol version mismatch: handler {PROTOCOL_VERSION}, server {got}",
            )
        )
        return 2
    try:
        spec = msgspec.json.decode(args.spec, type=LoadOptions)
        logs.configure(spec.id)
        engine = open_engine(spec)
    except LoadError as exc:
        channel.send(Failed(req_id=0, kind=exc.kind, message=str(exc)))  # type: ignore[arg-type]
        return 1
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        channel.send(Failed(req_id=0, kind="load_error", message=str(exc)))
        return 1
    except Exception as exc:
        channel.send(Failed(req_id=0, kind="load_error", message=f"{type(exc).__name__}: {exc}"))
        return 1
    try:
        channel.send(
            Ready(
                protocol_version=PROTOCOL_VERSION,
                pid=os.getpid(),
                context_length=engine.context_length,
                engine=engine.name,
            )
        )
    except OSError:
        _leave(1)  # the server went away while we were loading
    Runtime(channel, engine).serve()
    channel.close()
    _leave(0)


def _warm(warm_up: Callable[[LoadOptions], object], spec_json: str) -> None:
    """Import the engine's modules while the server holds a restart's backoff,
    so a restarted model answers a backoff sooner. Any error here is reported
    by the real load that follows."""
    try:
        warm_up(msgspec.json.decode(spec_json, type=LoadOptions))
    except Exception:  # the load after Hello reports it
        pass


def _leave(code: int) -> NoReturn:
    """Exit with a loaded engine: never let it be garbage-collected, since
    llama.cpp's destructor can wait forever on its own HTTP thread, and engine
    threads may sit in native code."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
