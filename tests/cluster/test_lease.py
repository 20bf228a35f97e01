"""The singleton jobs' lease, on the machine's real Redis: one replica leads; when the
leader gives it up or dies (stops renewing), another takes it within the lease time."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator

import pytest
from redis import asyncio as aioredis

from standby.cluster.lease import Lease

REDIS = "redis://127.0.0.1:6379/15"
TTL = 0.9  # seconds


async def _redis() -> aioredis.Redis:
    client = aioredis.from_url(REDIS, socket_connect_timeout=1)
    try:
        await client.ping()
    except Exception:
        await client.aclose()
        pytest.skip("no Redis on 127.0.0.1:6379")
    return client


@contextlib.asynccontextmanager
async def running(*leases: Lease) -> AsyncIterator[dict[str, asyncio.Task[None]]]:
    tasks = {lease.replica: asyncio.create_task(lease.run()) for lease in leases}
    try:
        yield tasks
    finally:
        for task in tasks.values():
            task.cancel()
        for task in tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _until_one_leads(leases: list[Lease], within: float) -> Lease:
    async with asyncio.timeout(within):
        while True:
            leading = [lease for lease in leases if lease.held]
            if len(leading) == 1:
                return leading[0]
            await asyncio.sleep(0.02)  # leases are renewed on their own clock: bounded


async def test_one_replica_leads_and_another_takes_over_when_it_gives_up() -> None:
    client = await _redis()
    prefix = f"lease-{secrets.token_hex(4)}"
    leases = [Lease(REDIS, prefix=prefix, replica=f"r{n}", ttl=TTL) for n in range(3)]
    try:
        async with running(*leases) as tasks:
            first = await _until_one_leads(leases, 5)
            assert first.token is not None and first.status()["redis"] == "connected"
            await asyncio.sleep(TTL)  # a few renewals: still exactly one leader
            assert [lease.held for lease in leases].count(True) == 1 and first.held
            tasks[first.replica].cancel()  # it stops, giving the lease up
            started = time.perf_counter()
            rest = [lease for lease in leases if lease is not first]
            second = await _until_one_leads(rest, 5)
            assert time.perf_counter() - started <= TTL + 0.1
            assert second.token is not None and second.token > (first.token or 0)
    finally:
        await client.aclose()


async def test_a_dead_holder_is_replaced_once_its_lease_expires() -> None:
    client = await _redis()
    prefix = f"lease-{secrets.token_hex(4)}"
    # a holder that will never renew: killed right after taking the lease
    await client.set(f"{prefix}:lease:singletons", "dead", nx=True, px=int(TTL * 1000))
    lease = Lease(REDIS, prefix=prefix, replica="alive", ttl=TTL)
    try:
        async with running(lease):
            started = time.perf_counter()
            await _until_one_leads([lease], 5)
            waited = time.perf_counter() - started
            assert waited <= TTL + TTL / 3 + 0.2  # the lease time, plus one try
            assert lease.status()["holder"] == "alive"
    finally:
        await client.aclose()
