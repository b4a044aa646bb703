"""A model handler without a model: the real handler process, runtime and
ipc protocol around a fake engine, so the server's core (HandlerProcess,
Admission, Registry, restarts) is tested in seconds.

Run as ``python -m tests.fake_handler --socket PATH --spec JSON`` (the
registry's ``handler_command``). The spec's ``model_path`` is a JSON file read
at every load, so a test can change how the next (re)start behaves:
``{"load": "ok" | "fail" | "exit", "load_delay": seconds, "warm": "exit"}``.
``fail`` answers ``Failed``; ``exit`` writes to stderr and exits with code 3
before ``Ready``; ``"warm": "exit"`` exits with code 4 while warming up, before
the handler connects to the server.

The prompt picks what a ``Generate`` does: ``crash`` emits one token and then
SIGKILLs its own process; ``slow`` emits ``max_tokens`` tokens 50 ms apart;
anything else emits ``max_tokens`` tokens ``"t0 ", "t1 ", ...`` at once.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from catalog.options import LoadOptions
from handlers.__main__ import main
from handlers.engine_protocol import Emit, LoadError, ShouldStop
from ipc.messages import EngineMemory, Finished, Generate, Usage

FAKE_HANDLER = (sys.executable, "-m", "tests.fake_handler")


class FakeTextEngine:
    """Tokens ``t0 t1 ...``; see the module docstring for the prompts."""

    name = "fake"
    parallel = 4

    def __init__(self, spec: LoadOptions) -> None:
        self.context_length = spec.context_length or 4096

    def generate(self, request: Generate, emit: Emit, should_stop: ShouldStop) -> Finished:
        """Run one request as its prompt says."""
        prompt = request.prompt or (request.messages or [])[-1].content or ""
        count = request.max_tokens or 16
        for i in range(count):
            if should_stop():
                return Finished(req_id=request.req_id, reason="cancelled")
            emit(f"t{i} ", 1)
            if prompt == "crash":
                time.sleep(0.05)  # let the token reach the server first
                os.kill(os.getpid(), signal.SIGKILL)
            if prompt == "slow":
                time.sleep(0.05)
        usage = Usage(prompt_tokens=1, completion_tokens=count)
        return Finished(req_id=request.req_id, reason="length", usage=usage)

    def memory(self) -> EngineMemory:
        """Nothing to report."""
        return EngineMemory()

    def close(self) -> None:
        """Nothing to release."""


def open_fake_engine(spec: LoadOptions) -> FakeTextEngine:
    """Load as the JSON file at ``spec.model_path`` says."""
    with open(spec.model_path) as f:
        config = json.load(f)
    time.sleep(config.get("load_delay", 0))
    if config.get("load") == "fail":
        raise LoadError("the fake model refuses to load")
    if config.get("load") == "exit":
        print("fake handler: exiting while loading", file=sys.stderr, flush=True)
        os._exit(3)
    return FakeTextEngine(spec)


def warm_up(spec: LoadOptions) -> None:
    """Exit before connecting when the JSON file at ``spec.model_path`` says so."""
    with open(spec.model_path) as f:
        if json.load(f).get("warm") == "exit":
            os._exit(4)


if __name__ == "__main__":
    sys.exit(main(open_engine=open_fake_engine, warm_up=warm_up))
