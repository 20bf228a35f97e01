"""Connection slots: a bounded FIFO queue with a short wait, then ``LocalLimit``."""

from __future__ import annotations

import asyncio

import pytest

from standby.errors import LocalLimit
from standby.providers.slots import Slots


async def waiting(slots: Slots, count: int) -> None:
    """Let the task just created run up to its wait; then ``count`` attempts wait."""
    await asyncio.sleep(0)
    assert slots.waiting == count


async def test_a_free_slot_is_taken_at_once_and_given_back() -> None:
    slots = Slots("p", 2)
    await slots.take()
    await slots.take()
    assert (slots.busy, slots.waiting) == (2, 0)
    slots.give()
    slots.give()
    assert slots.busy == 0
    assert repr(slots) == "<Slots p busy=0/2 waiting=0/2 wait=1s>"


async def test_waiters_are_served_in_arrival_order() -> None:
    slots = Slots("p", 1, queue=3)
    await slots.take()
    order: list[int] = []

    async def one(n: int) -> None:
        await slots.take()
        order.append(n)

    tasks = []
    for n in range(3):
        tasks.append(asyncio.create_task(one(n)))
        await waiting(slots, n + 1)
    for _ in range(3):
        slots.give()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert (slots.busy, slots.waiting) == (1, 0)  # the last one still holds its slot


async def test_a_full_queue_refuses_at_once() -> None:
    slots = Slots("primary", 1, queue=1, wait=5.0)
    await slots.take()
    waiter = asyncio.create_task(slots.take())
    await waiting(slots, 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(LocalLimit) as caught:
        await slots.take()
    assert loop.time() - started < 0.1
    assert "Standby's own connection limit" in caught.value.message
    assert "providers.primary.max_connections" in caught.value.message
    slots.give()
    await waiter
    assert (slots.busy, slots.waiting) == (1, 0)


async def test_a_wait_that_runs_out_is_a_local_limit_and_leaves_nothing_behind() -> None:
    slots = Slots("p", 1, wait=0.05)
    await slots.take()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(LocalLimit, match=r"within 0\.05s"):
        await slots.take()
    assert 0.04 < loop.time() - started < 1.0
    assert (slots.busy, slots.waiting) == (1, 0)
    slots.give()
    assert slots.busy == 0


async def test_an_explicit_wait_overrides_the_default() -> None:
    slots = Slots("p", 1, wait=30.0)
    await slots.take()
    with pytest.raises(LocalLimit, match=r"within 0\.01s"):
        await slots.take(0.01)


async def test_a_cancelled_waiter_does_not_take_the_next_free_slot() -> None:
    slots = Slots("p", 1, queue=2)
    await slots.take()
    gone = asyncio.create_task(slots.take())
    await waiting(slots, 1)
    kept = asyncio.create_task(slots.take())
    await waiting(slots, 2)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert slots.waiting == 1
    slots.give()
    await kept
    assert (slots.busy, slots.waiting) == (1, 0)


async def test_a_slot_handed_to_a_waiter_that_is_cancelled_is_passed_on() -> None:
    slots = Slots("p", 1, queue=2)
    await slots.take()
    first = asyncio.create_task(slots.take())
    await waiting(slots, 1)
    second = asyncio.create_task(slots.take())
    await waiting(slots, 2)
    slots.give()  # handed to `first`, which is cancelled before it runs again
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)  # the slot went on to the next in line
    assert (slots.busy, slots.waiting) == (1, 0)
    slots.give()
    assert slots.busy == 0


async def test_waiters_that_left_do_not_pile_up_while_every_slot_is_held() -> None:
    slots = Slots("p", 1, queue=1000, wait=0.001)
    await slots.take()
    for _ in range(500):
        with pytest.raises(LocalLimit):
            await slots.take()
    assert slots.waiting == 0
    assert len(slots._queue) <= 64 + 1
    slots.give()
    assert slots.busy == 0


def test_a_pool_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        Slots("p", 0)
