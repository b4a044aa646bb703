"""A model reloaded in place (``Registry.reload``, what SIGHUP does to a changed
model), on the fake handler: requests running on the old handler finish
there, queued ones wait and run on the new one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from bodega.errors import HandlerFailed, ModelLoadFailed, ModelUnavailable
from bodega.registry.admission import Admission
from bodega.registry.model import Model
from bodega.registry.registry import Registry
from ipc.messages import Delta, Generate
from tests.fake_handler import FAKE_HANDLER
from tests.registry.test_restarts import configure, spec

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    async with trio.open_nursery() as nursery:
        registry = Registry(nursery, load_timeout=30, handler_command=FAKE_HANDLER)
        try:
            yield registry
        finally:
            await registry.stop_all()
            nursery.cancel_scope.cancel()


async def slow(model: Model, tokens: int, served: list[tuple[int | None, str]]) -> None:
    """A slow request; records the pid of the handler that answered and the text."""
    text, pid = [], None
    async for frame in model.stream(Generate(req_id=0, prompt="slow", max_tokens=tokens)):
        if isinstance(frame, Delta):
            pid = pid or model.handler.pid
            text.append(frame.text)
    served.append((pid, "".join(text)))


async def until(predicate: Any) -> None:
    with trio.fail_after(10):
        while not predicate():
            await trio.sleep(0.01)


async def test_queued_requests_run_on_the_new_handler(registry: Registry, tmp_path: Path) -> None:
    first = spec(tmp_path, "m", max_concurrency=1, queue_size=8, queue_timeout=60)
    model = await registry.load(first)
    old_pid = model.handler.pid
    served: list[tuple[int | None, str]] = []
    async with trio.open_nursery() as nursery:
        for _ in range(4):  # 10 tokens 50 ms apart: half a second each
            nursery.start_soon(slow, model, 10, served)
        await until(lambda: model.admission.stats.queued == 3)
        changed = msgspec.structs.replace(first, context_length=2048, max_concurrency=2)
        assert await registry.reload(changed) is model
        assert model.status == "running" and model.handler.pid != old_pid
    text = "".join(f"t{i} " for i in range(10))
    assert served[0] == (old_pid, text)  # the running one finished where it ran
    assert sorted(served[1:]) == [(model.handler.pid, text)] * 3  # the queued ones: new
    assert model.handler.context_length == 2048
    assert model.admission.stats.max_concurrency == 2
    assert model.state().restarts == 0  # a reload is not a crash
    await trio.sleep(0.3)
    assert model.status == "running"  # the old handler's exit restarted nothing


async def test_a_request_past_the_drain_timeout_gets_a_clear_error(
    registry: Registry, tmp_path: Path
) -> None:
    first = spec(tmp_path, "m", max_concurrency=1, queue_timeout=60)
    model = await registry.load(first)
    served: list[tuple[int | None, str]] = []
    failures: list[str] = []

    async def too_long() -> None:
        try:
            await slow(model, 200, served)  # 10 s
        except HandlerFailed as exc:
            failures.append(exc.message)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(too_long)
        await until(lambda: model.handler.in_flight == 1)
        nursery.start_soon(slow, model, 3, served)
        await until(lambda: model.admission.stats.queued == 1)
        await registry.reload(msgspec.structs.replace(first, context_length=1024), 0.3)
    assert len(failures) == 1 and "reloaded before this request finished" in failures[0]
    assert served == [(model.handler.pid, "t0 t1 t2 ")]


async def test_a_reload_that_fails_leaves_the_model_failed(
    registry: Registry, tmp_path: Path
) -> None:
    first = spec(tmp_path, "m", max_concurrency=1, queue_timeout=60)
    model = await registry.load(first)
    served: list[tuple[int | None, str]] = []
    errors: list[str] = []

    async def queued() -> None:
        try:
            await slow(model, 3, served)
        except ModelUnavailable as exc:
            errors.append(exc.message)

    broken = tmp_path / "broken.json"
    configure(broken, load="fail")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow, model, 10, served)
        await until(lambda: model.handler.in_flight == 1)
        nursery.start_soon(queued)
        await until(lambda: model.admission.stats.queued == 1)
        with pytest.raises(ModelLoadFailed, match="refuses to load"):
            await registry.reload(msgspec.structs.replace(first, model_path=str(broken)))
    assert len(served) == 1  # the running one finished on the old handler
    assert model.status == "failed"
    assert len(errors) == 1 and "refuses to load" in errors[0]


async def test_admission_resize() -> None:
    admission = Admission(2, 4, 10)
    one, two = await admission.acquire(), await admission.acquire()
    admission.resize(1, 4, 10)  # both slots are held: one is given up when released
    one.release()
    with trio.move_on_after(0.1) as waited:
        await admission.acquire()
    assert waited.cancelled_caught  # still one running: no free slot
    two.release()
    three = await admission.acquire()
    admission.resize(3, 4, 10)
    assert admission.stats.max_concurrency == 3
    await admission.acquire()
    await admission.acquire()
    with trio.move_on_after(0.1) as waited:
        await admission.acquire()
    assert waited.cancelled_caught
    three.release()
