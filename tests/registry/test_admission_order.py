"""The admission queue's order: priority first, aging, FIFO among equals
(trio's mock clock, so aging needs no real waiting)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from bodega.errors import InvalidRequest
from bodega.registry.admission import Admission
from bodega.registry.priority import HIGH, LOW, NORMAL, priority_of


async def _queue(admission: Admission, order: list[str], name: str, priority: int) -> None:
    slot = await admission.acquire(priority)
    order.append(name)
    slot.release()


async def test_higher_priority_first_then_first_in_first_out() -> None:
    admission = Admission(1, 10, 60, aging=10)
    holder = await admission.acquire()
    order: list[str] = []
    async with trio.open_nursery() as nursery:
        for name, level in (("low1", LOW), ("low2", LOW), ("high", HIGH), ("normal", NORMAL)):
            nursery.start_soon(_queue, admission, order, name, level)
            await trio.testing.wait_all_tasks_blocked()
        assert admission.stats.queued_by_priority == {"0": 2, "1": 1, "2": 1}
        holder.release()
    assert order == ["high", "normal", "low1", "low2"]
    assert admission.stats.queued_by_priority == {}
    assert admission.stats.queued == 0 and admission.stats.running == 0


async def test_a_waiting_low_request_ages_past_newer_normal_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    admission = Admission(1, 10, 600, aging=5)
    holder = await admission.acquire()
    order: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_queue, admission, order, "old-low", LOW)
        await trio.sleep(11)  # two aging steps: LOW + 2 > NORMAL
        for name in ("new-normal1", "new-normal2"):
            nursery.start_soon(_queue, admission, order, name, NORMAL)
            await trio.testing.wait_all_tasks_blocked()
        holder.release()
    assert order == ["old-low", "new-normal1", "new-normal2"]


async def test_before_its_aging_step_a_low_request_still_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    admission = Admission(1, 10, 600, aging=5)
    holder = await admission.acquire()
    order: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_queue, admission, order, "old-low", LOW)
        await trio.sleep(4)  # not yet one step
        nursery.start_soon(_queue, admission, order, "new-normal", NORMAL)
        await trio.testing.wait_all_tasks_blocked()
        holder.release()
    assert order == ["new-normal", "old-low"]


async def test_a_waiter_that_leaves_frees_its_place() -> None:
    admission = Admission(1, 10, 60)
    holder = await admission.acquire()
    with trio.move_on_after(0.05):
        await admission.acquire(HIGH)
    assert admission.stats.queued == 0 and admission.stats.queued_by_priority == {}
    holder.release()
    slot = await admission.acquire()  # the slot was not lost
    slot.release()
    assert admission.stats.running == 0


def test_service_tier_maps_onto_priority() -> None:
    assert priority_of(None, "priority") == HIGH
    assert priority_of(None, "default") == NORMAL
    assert priority_of(None, "auto") == NORMAL
    assert priority_of(None, "flex") == LOW
    assert priority_of("batch", "priority") == LOW  # priority wins
    assert priority_of(7, None) == 7
    assert priority_of(None, None) is None
    with pytest.raises(InvalidRequest) as raised:
        priority_of(None, "gold")
    assert raised.value.param == "service_tier"
