"""Where the limits' counts live: this process alone, or Redis for every replica.

A ``Ledger`` answers two asks: ``take`` one unit of a sliding-log limit (requests), and
``check`` / ``add`` an amount-per-window budget (tokens); see ``capacity.window``.

``LocalLedger`` keeps the counts in this process.  ``RedisLedger`` keeps them in Redis,
so every replica of a gateway draws from one count: each ask is one script run on the
server, timed by Redis's own clock (replicas' clocks never disagree about a window).
When Redis does not answer within ``timeout`` (or refuses), the ask is answered by a
local ledger instead, with each limit divided by the number of live replicas (their
shares, so that together they still keep to it), and Redis is left alone for a second
before it is tried again: a request never fails because Redis is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from standby.cancellation import raise_if_cancelled
from standby.capacity.window import Buckets, Grant, SlidingLog

log = logging.getLogger("standby.capacity")

TIMEOUT = 0.25  # seconds an ask may wait for Redis before the local ledger answers it
PAUSE = 1.0  # seconds Redis is left alone after a failed ask
ROSTER_EVERY = 5.0  # seconds between two counts of the replicas alive
ALIVE = 10.0  # a replica whose heartbeat is older than this is not counted
MAX_KEYS = 100_000  # limits a local ledger keeps (clients times kinds); beyond, the oldest go


class Ledger(Protocol):
    async def take(
        self, key: str, cap: int, span: float, *, want: int = 1, hold: float = 0.0
    ) -> Grant:
        """``want`` units of ``key``'s sliding log if they fit under ``cap`` in ``span``,
        dated ``hold`` seconds ahead (a block to spend within that time)."""
        ...

    async def check(self, key: str, cap: int, span: float) -> Grant:
        """Whether ``key``'s amounts over ``span`` are under ``cap``."""
        ...

    async def add(self, key: str, amount: int, span: float) -> None:
        """Count ``amount`` into ``key``'s window of ``span`` seconds."""
        ...

    def status(self) -> dict[str, Any]: ...


class LocalLedger:
    """The counts of this process only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._logs: dict[str, SlidingLog] = {}
        self._buckets: dict[str, Buckets] = {}

    def _log(self, key: str, span: float) -> SlidingLog:
        found = self._logs.get(key)
        if found is None:
            _bound(self._logs)
            found = self._logs[key] = SlidingLog(span)
        return found

    def _bucket(self, key: str, span: float) -> Buckets:
        found = self._buckets.get(key)
        if found is None:
            _bound(self._buckets)
            found = self._buckets[key] = Buckets(span, span / 60.0)
        return found

    async def take(
        self, key: str, cap: int, span: float, *, want: int = 1, hold: float = 0.0
    ) -> Grant:
        return self.take_now(key, cap, span, want=want, hold=hold)

    def take_now(
        self, key: str, cap: int, span: float, *, want: int = 1, hold: float = 0.0
    ) -> Grant:
        return self._log(key, span).take(cap, self.clock(), want=want, hold=hold)

    async def check(self, key: str, cap: int, span: float) -> Grant:
        return self._bucket(key, span).check(cap, self.clock())

    async def add(self, key: str, amount: int, span: float) -> None:
        self._bucket(key, span).add(amount, self.clock())

    def status(self) -> dict[str, Any]:
        return {"ledger": "local"}


def _bound(table: dict[str, Any]) -> None:
    if len(table) >= MAX_KEYS:  # dicts keep insertion order: the oldest limits go first
        for key in list(itertools.islice(table, MAX_KEYS // 10)):
            del table[key]


# KEYS[1]: the log (a sorted set of units scored by their time in ms).  ARGV: span (ms),
# cap, a unique member, units wanted, how far ahead they are dated (ms).
# → {granted 0/1, used, retry after (ms; for one unit)}
_TAKE = """
local span = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local want = tonumber(ARGV[4])
local hold = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - span)
local used = redis.call('ZCARD', KEYS[1])
if used + want <= cap then
  for i = 1, want do
    redis.call('ZADD', KEYS[1], now + hold, ARGV[3] .. ':' .. i)
  end
  redis.call('PEXPIRE', KEYS[1], span + hold)
  return {1, used + want, 0}
end
if want > 1 then
  return {0, used, 0}
end
if cap <= 0 then
  return {0, used, span}
end
local rank = redis.call('ZRANGE', KEYS[1], used - cap, used - cap, 'WITHSCORES')
return {0, used, tonumber(rank[2]) + span - now}
"""

# KEYS[1]: the buckets (a hash: bucket number → amount).  ARGV: span (ms), width (ms),
# amount to add (0: only check), cap.  → {under cap 0/1, used, retry after (ms)}
_BUCKETS = """
local span = tonumber(ARGV[1])
local width = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local first = math.floor((now - span) / width) + 1
if amount > 0 then
  redis.call('HINCRBY', KEYS[1], math.floor(now / width), amount)
  redis.call('PEXPIRE', KEYS[1], span + width)
end
local kept = {}
local used = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local number = tonumber(all[i])
  if number < first then
    redis.call('HDEL', KEYS[1], all[i])
  else
    used = used + tonumber(all[i + 1])
    table.insert(kept, {number, tonumber(all[i + 1])})
  end
end
if used < cap then
  return {1, used, 0}
end
table.sort(kept, function(a, b) return a[1] < b[1] end)
local over = used - cap
for _, bucket in ipairs(kept) do
  over = over - bucket[2]
  if over < 0 then
    return {0, used, bucket[1] * width + span - now}
  end
end
return {0, used, span}
"""


class RedisLedger:
    """The counts of every replica, in Redis; its own share of each limit when Redis is
    away (the replicas alive when it last looked: the heartbeats in ``roster``)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        roster: str = "",
        timeout: float = TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.prefix = prefix
        self.roster = roster  # the hash of the replicas' heartbeats (``cluster.health``)
        self.replicas = 1  # alive when last looked, this one included
        self._looked = -ROSTER_EVERY
        self._looking: asyncio.Task[None] | None = None
        self.wall = wall
        self.timeout = timeout
        self.clock = clock
        self.local = LocalLedger(clock)
        self._client: Any = aioredis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        self._take = self._client.register_script(_TAKE)
        self._buckets = self._client.register_script(_BUCKETS)
        self._member = f"{secrets.token_hex(4)}:"
        self._units = itertools.count()
        self._away_until = 0.0  # monotonic: asks go to the local ledger until then
        self.error = ""
        self.fallbacks = 0  # asks answered locally because Redis was away

    def _share(self, cap: int) -> int:
        return max(1, math.floor(cap / max(1, self.replicas))) if cap > 0 else 0

    def _look_at_roster(self) -> None:
        """Now and then, count the replicas alive (for the shares, should Redis go)."""
        now = self.clock()
        if not self.roster or now - self._looked < ROSTER_EVERY or self._looking is not None:
            return
        self._looked = now
        self._looking = asyncio.get_running_loop().create_task(self._count_replicas())

    async def _count_replicas(self) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                beats = await self._client.hgetall(self.roster)
            alive = 0
            for raw in beats.values():
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    if self.wall() - float(orjson.loads(raw).get("at", 0.0)) < ALIVE:
                        alive += 1
            self.replicas = max(1, alive)
        except (RedisError, OSError, TimeoutError) as exc:
            log.debug("capacity: could not count the replicas: %s", exc)
        finally:
            self._looking = None

    def _away(self) -> bool:
        return self.clock() < self._away_until

    def _failed(self, exc: BaseException) -> None:
        if not self.error:
            log.warning("capacity: Redis unreachable (%s); each replica keeps to its share", exc)
        self.error = str(exc) or type(exc).__name__
        self._away_until = self.clock() + PAUSE

    async def _run(self, script: Any, key: str, args: list[Any]) -> list[Any] | None:
        if self._away():
            self.fallbacks += 1
            return None
        try:
            async with asyncio.timeout(self.timeout):
                result: list[Any] = await script(keys=[f"{self.prefix}:{key}"], args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise_if_cancelled(exc)  # the request was cancelled meanwhile: not an outage
            self._failed(exc)
            self.fallbacks += 1
            return None
        if self.error:
            log.warning("capacity: Redis is back; limits are counted for every replica again")
            self.error = ""
        self._look_at_roster()
        return result

    async def take(
        self, key: str, cap: int, span: float, *, want: int = 1, hold: float = 0.0
    ) -> Grant:
        member = f"{self._member}{next(self._units)}"
        args = [int(span * 1000), cap, member, want, int(hold * 1000)]
        result = await self._run(self._take, key, args)
        if result is None:
            return self.local.take_now(key, self._share(cap), span, want=want, hold=hold)
        return Grant(bool(result[0]), int(result[1]), int(result[2]) / 1000.0)

    async def check(self, key: str, cap: int, span: float) -> Grant:
        width = max(1, int(span * 1000 / 60))
        result = await self._run(self._buckets, key, [int(span * 1000), width, 0, cap])
        if result is None:
            return await self.local.check(key, self._share(cap), span)
        return Grant(bool(result[0]), int(result[1]), int(result[2]) / 1000.0)

    async def add(self, key: str, amount: int, span: float) -> None:
        await self.local.add(key, amount, span)  # the local share, if Redis goes away
        width = max(1, int(span * 1000 / 60))
        await self._run(self._buckets, key, [int(span * 1000), width, amount, 0])

    def status(self) -> dict[str, Any]:
        return {
            "ledger": "redis",
            "redis": f"unreachable: {self.error}" if self.error else "connected",
            "fallbacks": self.fallbacks,
            "replicas": self.replicas,
        }

    async def close(self) -> None:
        if self._looking is not None:
            self._looking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._looking
        await self._client.aclose()
