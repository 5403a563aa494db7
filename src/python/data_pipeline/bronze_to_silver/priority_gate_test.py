"""Tests of PriorityGate: slots are counted, freed slots go to the lowest priority number."""

from __future__ import annotations

import asyncio

import pytest

from data_pipeline.bronze_to_silver.priority_gate import PriorityGate


async def _wait_until_waiting(gate: PriorityGate, count: int) -> None:
    while len(gate._waiters) < count:
        await asyncio.sleep(0)


async def test_a_freed_slot_goes_to_the_lowest_priority_then_to_the_earliest_arrival() -> None:
    gate = PriorityGate(1)
    order: list[str] = []

    async def holder(name: str, priority: int) -> None:
        async with gate.held(priority):
            order.append(name)
            await asyncio.sleep(0)

    await gate.acquire(0)  # the one slot is taken: everyone below waits
    tasks = [
        asyncio.create_task(holder(name, priority))
        for name, priority in [("late-1", 5), ("first", 1), ("late-2", 5), ("second", 2)]
    ]
    await _wait_until_waiting(gate, 4)
    gate.release()
    await asyncio.gather(*tasks)

    assert order == ["first", "second", "late-1", "late-2"]


async def test_no_more_than_slots_hold_it_at_once() -> None:
    gate = PriorityGate(3)
    holding = 0
    most = 0

    async def hold(priority: int) -> None:
        nonlocal holding, most
        async with gate.held(priority):
            holding += 1
            most = max(most, holding)
            await asyncio.sleep(0.001)
            holding -= 1

    await asyncio.gather(*(hold(n % 4) for n in range(20)))

    assert most == 3
    assert gate._free == 3


async def test_a_cancelled_waiter_is_skipped_and_loses_no_slot() -> None:
    gate = PriorityGate(1)
    await gate.acquire(0)
    cancelled = asyncio.create_task(gate.acquire(1))
    after = asyncio.create_task(gate.acquire(2))
    await _wait_until_waiting(gate, 2)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled

    gate.release()
    await asyncio.wait_for(after, 5)  # the slot passed over the cancelled waiter
    gate.release()

    assert gate._free == 1


async def test_a_waiter_cancelled_after_it_was_granted_passes_the_slot_on() -> None:
    gate = PriorityGate(1)
    await gate.acquire(0)
    granted_then_cancelled = asyncio.create_task(gate.acquire(1))
    next_in_line = asyncio.create_task(gate.acquire(2))
    await _wait_until_waiting(gate, 2)
    gate.release()  # grants the slot to priority 1 ...
    granted_then_cancelled.cancel()  # ... which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await granted_then_cancelled

    await asyncio.wait_for(next_in_line, 5)
    gate.release()

    assert gate._free == 1


def test_a_gate_needs_a_slot_and_refuses_extra_releases() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        PriorityGate(0)
    with pytest.raises(RuntimeError, match="released more often"):
        PriorityGate(1).release()
