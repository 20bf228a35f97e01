"""Where limits are counted: this process, or the machine's real Redis for every replica;
Redis away, each replica keeps to its share."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator

import orjson
import pytest
from redis import asyncio as aioredis

from standby.capacity.ledger import LocalLedger, RedisLedger
from tests.cluster.redis_support import REDIS, redis_up
from tests.e2e.served import free_port


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    if not await redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    prefix = f"test-ledger-{secrets.token_hex(4)}"
    yield prefix
    client = aioredis.from_url(REDIS)
    try:
        keys = [key async for key in client.scan_iter(f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def test_two_replicas_draw_from_one_count_in_redis(redis_prefix: str) -> None:
    a = RedisLedger(REDIS, prefix=redis_prefix)
    b = RedisLedger(REDIS, prefix=redis_prefix)
    try:
        granted = [
            (await ledger.take("target:backup", 5, 60.0)).granted
            for ledger in (a, b, a, b, a, b, a)
        ]
        assert granted == [True] * 5 + [False] * 2
        refused = await b.take("target:backup", 5, 60.0)
        assert 59.0 < refused.retry_after <= 60.0
        assert refused.used == 5
        # a lower cap for a lower priority: refused while the higher one still has room
        assert not (await a.take("target:backup", 3, 60.0)).granted
        assert a.fallbacks == b.fallbacks == 0
    finally:
        await a.close()
        await b.close()


async def test_token_budgets_are_shared_too(redis_prefix: str) -> None:
    a = RedisLedger(REDIS, prefix=redis_prefix)
    b = RedisLedger(REDIS, prefix=redis_prefix)
    try:
        await a.add("client-tokens:alice", 60, 60.0)
        assert (await b.check("client-tokens:alice", 100, 60.0)).granted
        await b.add("client-tokens:alice", 50, 60.0)
        over = await a.check("client-tokens:alice", 100, 60.0)
        assert not over.granted and over.used == 110
        assert 0.0 < over.retry_after <= 61.0
    finally:
        await a.close()
        await b.close()


async def test_redis_away_each_replica_keeps_to_its_share() -> None:
    # nothing listens on this port: every ask is answered locally, at once
    ledger = RedisLedger(f"redis://127.0.0.1:{free_port()}/0", prefix="away")
    ledger.replicas = 3  # as the roster said when Redis was last seen
    try:
        granted = [(await ledger.take("target:backup", 9, 60.0)).granted for _ in range(5)]
        assert granted == [True] * 3 + [False] * 2  # 9 / 3 replicas
        assert ledger.fallbacks == 5
        assert ledger.status()["redis"].startswith("unreachable")
    finally:
        await ledger.close()


async def test_the_replicas_alive_are_counted_from_their_heartbeats(redis_prefix: str) -> None:
    roster = f"{redis_prefix}:replicas"
    client = aioredis.from_url(REDIS)
    now = time.time()
    beats = {"a": now, "b": now - 1.0, "gone": now - 3600.0}
    await client.hset(roster, mapping={k: orjson.dumps({"at": at}) for k, at in beats.items()})
    await client.aclose()
    ledger = RedisLedger(REDIS, prefix=redis_prefix, roster=roster)
    try:
        await ledger.take("target:x", 10, 60.0)  # a successful ask looks at the roster
        assert ledger._looking is not None
        await ledger._looking
        assert ledger.replicas == 2
    finally:
        await ledger.close()


async def test_the_local_ledger_counts_by_its_own_clock() -> None:
    now = [0.0]
    ledger = LocalLedger(lambda: now[0])
    assert (await ledger.take("k", 1, 60.0)).granted
    assert not (await ledger.take("k", 1, 60.0)).granted
    now[0] = 60.0
    assert (await ledger.take("k", 1, 60.0)).granted
    await ledger.add("t", 10, 60.0)
    assert not (await ledger.check("t", 10, 60.0)).granted
