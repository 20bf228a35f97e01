"""Breaker states and outcomes shared between replicas through the machine's real Redis:
a breaker opened on one replica is followed by the others within 100 ms, a closed one is
closed there too; failures reach the others' counts within milliseconds, each second's
outcomes their signals; Redis away, each replica goes on alone and catches up when it
returns."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Callable

import pytest

from standby.cluster.health import SharedHealth
from standby.health.breaker import Breaker
from standby.health.gate import RegistryGate
from standby.health.registry import HealthRegistry
from standby.metrics import Metrics
from standby.plan.model import BreakerConfig
from standby.watch.signals import Signals
from tests.cluster.redis_support import REDIS, private_redis, redis_up
from tests.e2e.served import free_port

KEY = "primary/gpt-4o-mini"
PROPAGATION = 0.1  # seconds: the bound


@contextlib.asynccontextmanager
async def replicas(url: str, count: int = 2) -> AsyncIterator[list[SharedHealth]]:
    """``count`` replicas' shared health, each with its own registry, connected."""
    prefix = f"test-{secrets.token_hex(4)}"
    found = []
    for n in range(count):
        gate = RegistryGate(HealthRegistry(BreakerConfig(failures=5)), Metrics())
        shared = SharedHealth(
            url, prefix=prefix, gate=lambda g=gate: g, replica=f"r{n}", signals=Signals()
        )
        gate.observer, gate.on_transition = shared.relay, shared.transition
        found.append(shared)
    tasks = [asyncio.create_task(r.run()) for r in found]
    try:
        await _until(lambda: all(r.connected for r in found))
        yield found
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait (bounded) until ``condition()``: connection states are plain attributes."""
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


async def _applied(replica: SharedHealth, count: int, within: float = 5.0) -> float:
    """Wait until ``replica`` applied ``count`` openings; the seconds it took."""
    started = time.perf_counter()
    async with asyncio.timeout(within):
        while replica.applied < count:
            replica.changed.clear()
            await replica.changed.wait()
    return time.perf_counter() - started


def _breaker(replica: SharedHealth) -> Breaker:
    return replica.gate().registry.get(KEY).breaker


async def test_an_opening_is_followed_by_the_others_and_a_closing_closes_it_there() -> None:
    if not await redis_up(REDIS):
        pytest.skip("no Redis on 127.0.0.1:6379")
    async with replicas(REDIS, 3) as (a, b, c):
        took = []
        for round_ in range(1, 6):
            a.transition(KEY, "open", a.clock() + 5.0)
            took.append(max(await _applied(b, round_), await _applied(c, round_)))
            assert _breaker(b).following and _breaker(b).state(b.clock()) == "open"
            assert _breaker(a).state(a.clock()) == "closed"  # never its own message
            b.changed.clear()
            a.transition(KEY, "closed", None)
            async with asyncio.timeout(5):
                while _breaker(b).state(b.clock()) != "closed":
                    await b.changed.wait()
                    b.changed.clear()
        assert sorted(took)[len(took) // 2] < PROPAGATION, took  # the median round
        assert b.status()["peers"].keys() == {"r0"} and b.status()["redis"] == "connected"


async def test_failures_reach_the_others_counts_and_seconds_their_signals() -> None:
    if not await redis_up(REDIS):
        pytest.skip("no Redis on 127.0.0.1:6379")
    async with replicas(REDIS, 3) as (a, b, c):
        for _ in range(2):  # two failures on a, one on b
            a.relay.attempt(KEY, "server_error", False, 0.1, a.clock())
        b.relay.attempt(KEY, "server_error", False, 0.1, b.clock())
        started = time.perf_counter()
        async with asyncio.timeout(5):
            while _breaker(c).consecutive_failures < 3:  # told within milliseconds
                c.changed.clear()
                await c.changed.wait()
        assert time.perf_counter() - started < 0.5  # not a second's summary: at once
        assert _breaker(a).consecutive_failures == 1 and _breaker(b).consecutive_failures == 2
        assert c.signals is not None
        async with asyncio.timeout(5):
            while c.signals.stats(KEY, 5.0, c.clock()).failures < 3:  # once the second is over
                c.changed.clear()
                await c.changed.wait()
        assert c.merged >= 1 and c.signals.stats(KEY, 5.0, c.clock()).events == 3
        a.relay.attempt(KEY, "ok", True, 0.1, a.clock())  # a success resets every count
        async with asyncio.timeout(5):
            while _breaker(c).consecutive_failures:
                c.changed.clear()
                await c.changed.wait()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")
async def test_redis_away_each_replica_goes_on_alone_and_catches_up_on_return() -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    first = private_redis(port)
    first.__enter__()
    try:
        async with asyncio.timeout(10):
            while True:  # the server starting: bounded
                if await redis_up(url):
                    break
                await asyncio.sleep(0.05)
        async with replicas(url) as (a, b):
            first.__exit__(None, None, None)  # Redis stops
            await _until(lambda: not a.connected and not b.connected)
            assert a.status()["redis"].startswith("unreachable")
            a.transition(KEY, "open", a.clock() + 30.0)  # said to no one: nothing raises
            a.relay.attempt(KEY, "server_error", False, 0.1, a.clock())  # nor that
            assert _breaker(b).state(b.clock()) == "closed"
            with private_redis(port):  # Redis back: a says its open breaker again
                assert await _applied(b, 1, within=20.0) < 20.0
                assert _breaker(b).following
    finally:
        first.__exit__(None, None, None)
