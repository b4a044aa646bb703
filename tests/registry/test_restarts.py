"""Handlers that restart themselves, on the fake handler (real processes, real ipc)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from bodega.errors import (
    HandlerFailed,
    ModelLoadFailed,
    ModelRestarting,
    ModelUnavailable,
    QueueTimeout,
)
from bodega.registry import supervisor
from bodega.registry.model import Model
from bodega.registry.registry import Registry
from bodega.settings import ModelSpec
from ipc.messages import Delta, Finished, Generate
from tests.fake_handler import FAKE_HANDLER

pytestmark = pytest.mark.timeout(120)


def configure(path: Path, **config: Any) -> None:
    """What the fake handler does at its next load."""
    path.write_text(json.dumps({"load": "ok", **config}))


def spec(tmp_path: Path, model_id: str, **options: Any) -> ModelSpec:
    path = tmp_path / f"{model_id}.json"
    if not path.exists():
        configure(path)
    return ModelSpec(model_path=str(path), model_id=model_id, **options)


def generate(prompt: str, max_tokens: int = 3) -> Generate:
    return Generate(req_id=0, prompt=prompt, max_tokens=max_tokens)


async def answer(model: Model, prompt: str = "hi", max_tokens: int = 3) -> str:
    text = []
    async for frame in model.stream(generate(prompt, max_tokens)):
        if isinstance(frame, Delta):
            text.append(frame.text)
        else:
            assert isinstance(frame, Finished)
    return "".join(text)


async def crash(model: Model) -> list[str]:
    """Run the crashing prompt; the tokens seen before the error."""
    seen = []
    with pytest.raises(HandlerFailed, match="exit code -9"):
        async for frame in model.stream(generate("crash", 10)):
            if isinstance(frame, Delta):
                seen.append(frame.text)
    return seen


@pytest.fixture
async def registry(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Registry]:
    monkeypatch.setattr(supervisor, "RESTART_BACKOFF_FIRST", 0.05)
    async with trio.open_nursery() as nursery:
        registry = Registry(nursery, load_timeout=30, handler_command=FAKE_HANDLER)
        try:
            yield registry
        finally:
            await registry.stop_all()
            nursery.cancel_scope.cancel()


async def test_a_killed_handler_is_restarted_and_the_others_never_notice(
    registry: Registry, tmp_path: Path
) -> None:
    model = await registry.load(spec(tmp_path, "m"))
    other = await registry.load(spec(tmp_path, "other"))
    first, other_before = model.state(), other.state()
    assert first.status == "running" and first.restarts == 0

    assert await crash(model) == ["t0 "]  # the client got output, then the error
    with trio.fail_after(5):
        assert await answer(model) == "t0 t1 t2 "  # waited for the restart
    state = model.state()
    assert state.status == "running"
    assert state.pid != first.pid
    assert state.restarts == 1
    assert state.last_exit_code == -9
    assert state.last_restart_at is not None
    assert state.error is None
    assert other.state() == other_before
    assert await answer(other) == "t0 t1 t2 "


async def test_the_backoff_doubles(registry: Registry, tmp_path: Path) -> None:
    supervisor.RESTART_BACKOFF_FIRST = 0.5
    model = await registry.load(spec(tmp_path, "m"))
    await crash(model)
    started = trio.current_time()
    assert await answer(model) == "t0 t1 t2 "
    first_wait = trio.current_time() - started
    await crash(model)
    started = trio.current_time()
    assert await answer(model) == "t0 t1 t2 "
    second_wait = trio.current_time() - started
    assert 0.5 <= first_wait < second_wait
    assert second_wait >= 1.0
    assert model.state().restarts == 2


async def test_requests_arriving_during_a_restart_wait_for_it(
    registry: Registry, tmp_path: Path
) -> None:
    model = await registry.load(spec(tmp_path, "m"))
    configure(tmp_path / "m.json", load_delay=1.0)
    await crash(model)
    assert model.status == "restarting"
    assert registry.resolve("m") is model  # still routed: it will answer
    results: list[str] = []
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(lambda: _append(results, answer(model)))
    assert results == ["t0 t1 t2 "] * 3
    assert model.state().restarts == 1


async def _append(results: list[str], value: Any) -> None:
    results.append(await value)


async def test_a_full_queue_during_a_restart_is_503_with_retry_after(
    registry: Registry, tmp_path: Path
) -> None:
    model = await registry.load(spec(tmp_path, "m", max_concurrency=1, queue_size=0))
    configure(tmp_path / "m.json", load_delay=1.0)
    await crash(model)
    async with trio.open_nursery() as nursery:
        results: list[str] = []
        nursery.start_soon(lambda: _append(results, answer(model)))
        await trio.sleep(0.2)  # the first request holds the only slot, waiting
        with pytest.raises(ModelRestarting) as caught:
            await answer(model)
    assert caught.value.status == 503
    assert "Retry-After" in caught.value.headers()
    assert results == ["t0 t1 t2 "]


async def test_waiting_for_a_restart_is_bounded_by_queue_timeout(
    registry: Registry, tmp_path: Path
) -> None:
    model = await registry.load(spec(tmp_path, "m", queue_timeout=0.5))
    configure(tmp_path / "m.json", load_delay=3.0)
    await crash(model)
    with trio.fail_after(3), pytest.raises(ModelUnavailable, match="still restarting"):
        await answer(model)
    with pytest.raises((ModelUnavailable, QueueTimeout)):
        await answer(model)


async def test_five_failures_within_ten_minutes_leave_it_failed(
    registry: Registry, tmp_path: Path
) -> None:
    model = await registry.load(spec(tmp_path, "m"))
    configure(tmp_path / "m.json", load="exit")  # every restart dies while loading
    await crash(model)
    with trio.fail_after(30):
        while model.status != "failed":
            await trio.sleep(0.05)
    state = model.state()
    assert state.restarts == 0
    assert state.last_exit_code == 3
    assert state.error is not None
    assert "gave up after 5 failures" in state.error
    assert "fake handler: exiting while loading" in state.error  # the stderr tail
    with pytest.raises(ModelUnavailable):
        registry.resolve("m")


async def test_restart_never_stays_failed(registry: Registry, tmp_path: Path) -> None:
    model = await registry.load(spec(tmp_path, "m", restart="never"))
    await crash(model)
    await trio.sleep(0.3)
    assert model.status == "failed"
    assert model.state().restarts == 0
    with pytest.raises(ModelUnavailable, match="exit code -9"):
        registry.resolve("m")


async def test_a_model_that_fails_its_first_load_is_not_retried(
    registry: Registry, tmp_path: Path
) -> None:
    path = tmp_path / "bad.json"
    configure(path, load="exit")
    with pytest.raises(ModelLoadFailed, match="exiting while loading"):
        await registry.load(ModelSpec(model_path=str(path), model_id="bad"))
    assert registry.models == []


async def test_an_unload_during_the_backoff_stops_the_restart(
    registry: Registry, tmp_path: Path
) -> None:
    supervisor.RESTART_BACKOFF_FIRST = 1.0
    model = await registry.load(spec(tmp_path, "m"))
    await crash(model)
    await registry.unload("m")
    await trio.sleep(1.5)
    assert model.status == "stopped"
    assert model.state().restarts == 0


async def test_an_unload_while_the_new_handler_waits_out_the_backoff(
    registry: Registry, tmp_path: Path
) -> None:
    supervisor.RESTART_BACKOFF_FIRST = 2.0
    model = await registry.load(spec(tmp_path, "m"))
    old_pid = model.state().pid
    await crash(model)
    with trio.fail_after(5):  # the new process starts at once and waits for its go
        while model.state().pid in (None, old_pid):
            await trio.sleep(0.02)
    await trio.sleep(0.3)  # connected by now, held until the backoff ends
    await registry.unload("m")
    assert model.status == "stopped"
    assert model.state().restarts == 0
    # The registry (and the server around it) lives on.
    other = await registry.load(spec(tmp_path, "other"))
    assert await answer(other) == "t0 t1 t2 "


async def test_a_handler_dying_before_it_connects_is_a_failed_restart(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor, "RESTART_BACKOFF_FIRST", 1.0)
    monkeypatch.setattr(supervisor, "RESTART_FAILURE_LIMIT", 3)
    model = await registry.load(spec(tmp_path, "m"))
    configure(tmp_path / "m.json", warm="exit")
    await crash(model)
    started = trio.current_time()
    with trio.fail_after(30):
        while model.status != "failed":
            await trio.sleep(0.05)
    # Dying early does not skip the backoff: 1 s + 2 s before the third failure.
    assert trio.current_time() - started >= 3.0
    state = model.state()
    assert state.last_exit_code == 4
    assert state.error is not None and "before loading" in state.error
    other = await registry.load(spec(tmp_path, "other"))
    assert await answer(other) == "t0 t1 t2 "
