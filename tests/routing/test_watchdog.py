"""The idle watchdog on a hand-moved clock: each wait for the upstream may last ``idle``
seconds from its start, one timer serves the whole stream, and time spent sending to the
client is never counted."""

from __future__ import annotations

import asyncio

import pytest

from standby.routing.watchdog import IdleWatchdog
from tests.routing.doubles import WAIT, Clock

IDLE = 1.0


class Reader:
    """A stream engine in miniature: waits for items under the watchdog, then "sends"
    each one (waiting for ``sent`` when the test holds the sends)."""

    def __init__(self, clock: Clock, *, hold_sends: bool = False) -> None:
        self.clock = clock
        self.items: asyncio.Queue[str | None] = asyncio.Queue()
        self.waits: asyncio.Queue[float] = asyncio.Queue()  # the time each wait began
        self.hold_sends = hold_sends
        self.sending = asyncio.Event()
        self.sent = asyncio.Event()
        self.got: list[str] = []
        self.watchdog: IdleWatchdog | None = None

    async def run(self) -> str:
        task = asyncio.current_task()
        assert task is not None
        watchdog = self.watchdog = IdleWatchdog(self.clock, IDLE, task)
        try:
            while True:
                watchdog.waiting()
                self.waits.put_nowait(self.clock.now)
                try:
                    item = await self.items.get()
                except asyncio.CancelledError:
                    if watchdog.expired():
                        return "idle"
                    raise
                finally:
                    watchdog.done_waiting()
                if item is None:
                    return "end"
                self.got.append(item)
                if self.hold_sends:
                    self.sent.clear()
                    self.sending.set()
                    await self.sent.wait()
                    self.sending.clear()
        finally:
            watchdog.stop()

    async def next_wait(self) -> float:
        async with asyncio.timeout(WAIT):
            return await self.waits.get()


async def finished(task: asyncio.Task[str]) -> str:
    async with asyncio.timeout(WAIT):
        return await task


async def test_a_wait_longer_than_idle_is_cut_at_idle() -> None:
    clock = Clock(0.0)
    reader = Reader(clock)
    task = asyncio.create_task(reader.run())
    await reader.next_wait()
    clock.advance(IDLE - 0.001)
    assert not task.done() and not task.cancelling()
    clock.advance(0.001)
    assert await finished(task) == "idle"
    assert task.cancelling() == 0, "the watchdog's cancellation was withdrawn"


async def test_chunks_within_idle_keep_one_timer_armed_lazily() -> None:
    clock = Clock(0.0)
    reader = Reader(clock)
    task = asyncio.create_task(reader.run())
    await reader.next_wait()
    for n in range(30):  # 30 chunks, 0.3 s apart: 9 s, each wait well within 1 s
        clock.advance(0.3)
        reader.items.put_nowait(f"c{n}")
        await reader.next_wait()
        assert len(clock.pending()) == 1, "one timer for the stream, never one per chunk"
    assert len(clock.handles) == 1
    calls = len(reader.got)
    reader.items.put_nowait(None)
    assert await finished(task) == "end"
    assert calls == 30
    assert clock.pending() == [], "stopped with the stream"


async def test_each_wait_counts_from_its_own_start() -> None:
    clock = Clock(0.0)
    reader = Reader(clock)
    task = asyncio.create_task(reader.run())
    await reader.next_wait()
    clock.advance(0.9)
    reader.items.put_nowait("a")
    assert await reader.next_wait() == pytest.approx(0.9)
    clock.advance(0.2)  # the first timer fires at 1.0: the wait under way began at 0.9
    assert not task.done()
    clock.advance(0.799)
    assert not task.done()
    clock.advance(0.001)  # 1.9: a whole idle since the wait began
    assert await finished(task) == "idle"


async def test_time_spent_sending_to_the_client_is_not_idle() -> None:
    clock = Clock(0.0)
    reader = Reader(clock, hold_sends=True)
    task = asyncio.create_task(reader.run())
    await reader.next_wait()
    reader.items.put_nowait("a")
    async with asyncio.timeout(WAIT):
        await reader.sending.wait()
    clock.advance(5 * IDLE)  # a slow client: the timer fires with no wait under way
    assert not task.done() and clock.pending() == []
    reader.sent.set()
    assert await reader.next_wait() == 5 * IDLE  # the next wait arms it anew
    clock.advance(IDLE / 2)
    assert not task.done()
    clock.advance(IDLE / 2)
    assert await finished(task) == "idle"


async def test_a_cancellation_from_elsewhere_is_never_swallowed() -> None:
    clock = Clock(0.0)
    reader = Reader(clock)
    task = asyncio.create_task(reader.run())
    await reader.next_wait()
    clock.advance(IDLE)  # the watchdog cancels …
    task.cancel()  # … and so does someone else (the client left, the server stops)
    with pytest.raises(asyncio.CancelledError):
        await finished(task)


async def test_repr_says_the_state() -> None:
    clock = Clock(0.0)
    reader = Reader(clock)
    task = asyncio.create_task(reader.run())
    await reader.next_wait()
    assert repr(reader.watchdog) == "<IdleWatchdog 1s waiting armed=True>"
    reader.items.put_nowait(None)
    await finished(task)
    assert repr(reader.watchdog) == "<IdleWatchdog 1s idle armed=False>"
