"""Breaker states shared by the replicas of one gateway, through Redis.

Each replica keeps its own health registry, and requests read only that: no Redis round
trip on the hot path.  When a replica's breaker for a target opens, it says so on a Redis
pub/sub channel (and in a hash, for a replica that starts or reconnects later); every
other replica then *holds* that target until the same moment (the hold a 429's
Retry-After uses), so a provider found down by one replica costs the others nothing.
When the breaker closes again (its trial succeeded), the replica says so and the others
lift their hold.  A replica never applies its own messages.

Redis away: each replica goes on with its own view (nothing waits for Redis, nothing
fails because of it), says so in ``status()``, and tries again with a growing pause; on
reconnection it reads the hash again and says its own open breakers again.

Times cross machines as wall-clock seconds; each replica turns them into its own
monotonic clock when it applies them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from standby.health.registry import HealthRegistry

log = logging.getLogger("standby.cluster")

RETRY_MIN, RETRY_MAX = 0.2, 5.0  # seconds between two tries to reach Redis
HEARTBEAT = 2.0  # seconds between two "I am here" of a replica
# a peer's hold outlasts its ejection by this much: when the ejection ends, the replica
# that opened it tries the target once (half-open) and says the outcome — re-opened or
# closed — before the others send it anything (without it, each of them sent requests
# to a still-failing target at every end of an ejection: measured, 0.100 primary hits
# per client request with three replicas against 0.073 with one)
GRACE = 0.5
QUEUE = 1024  # transitions waiting to be said; more are dropped (the hash has the latest)


class SharedHealth:
    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        registry: Callable[[], HealthRegistry],
        replica: str | None = None,
        about: dict[str, Any] | None = None,
        report: Callable[[], dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.channel = f"{prefix}:health"
        self.table = f"{prefix}:breakers"
        self.roster = f"{prefix}:replicas"  # replica → its heartbeat (what it is, when)
        self.about = dict(about or {})  # what a heartbeat says of this replica
        self.report = report  # and what it says of its state now (its journal's lag)
        self.registry = registry
        self.replica = replica or secrets.token_hex(4)
        self.clock, self.wall = clock, wall
        self.connected = False
        self.error = ""
        self.applied = 0  # peers' openings applied here
        self.peers: dict[str, float] = {}  # replica → when it last said something (wall)
        self._held: dict[str, float] = {}  # target → until (monotonic) of our cluster hold
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE)
        self._mine: dict[str, dict[str, Any]] = {}  # target → our last open message
        self.changed = asyncio.Event()  # set at each peer's message applied (for waiters)

    # -- from this replica's gate (on the event loop, never waits) -----------------------------
    def transition(self, key: str, state: str, open_until: float | None) -> None:
        """This replica's breaker for ``key`` changed: say it to the others."""
        if state == "open" and open_until is not None:
            message = {
                "replica": self.replica,
                "target": key,
                "state": "open",
                "until": self.wall() + max(0.0, open_until - self.clock()),
                "at": self.wall(),
            }
            self._mine[key] = message
        elif state == "closed":
            self._mine.pop(key, None)
            message = {"replica": self.replica, "target": key, "state": "closed", "at": self.wall()}
        else:
            return  # half-open: a trial is under way, nothing for the others yet
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(message)

    # -- applying the others' ---------------------------------------------------------------
    def apply(self, message: dict[str, Any]) -> bool:
        """A peer's message; ``True`` when it changed this replica's view."""
        replica, key = message.get("replica"), message.get("target")
        if not isinstance(key, str) or not isinstance(replica, str) or replica == self.replica:
            return False
        self.peers[replica] = float(message.get("at") or self.wall())
        health = self.registry().get(key)
        if message.get("state") == "open":
            remaining = float(message.get("until", 0.0)) + GRACE - self.wall()
            if remaining <= 0:
                return False
            until = self.clock() + remaining
            health.hold_until(until)
            self._held[key] = max(until, self._held.get(key, 0.0))
            self.applied += 1
            self.changed.set()
            return True
        if message.get("state") == "closed":
            held = self._held.pop(key, None)
            if held is not None and health.held_until is not None and health.held_until <= held:
                health.held_until = None  # our cluster hold, not a provider's Retry-After
                self.changed.set()
                return True
        return False

    # -- running ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Keep connected to Redis, say this replica's transitions, apply the others'."""
        delay = RETRY_MIN
        while True:
            client = aioredis.from_url(self.url, socket_connect_timeout=2, socket_timeout=None)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    await self._resync(client)
                    self.connected, self.error, delay = True, "", RETRY_MIN
                    log.warning("cluster: sharing breaker states through %s", _shown(self.url))
                    talking = asyncio.create_task(self._say(client))
                    beating = asyncio.create_task(self._beat(client))
                    try:
                        await self._listen(pubsub)
                    finally:
                        for task in (talking, beating):
                            task.cancel()
                        for task in (talking, beating):
                            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                                await task
            except (RedisError, OSError) as exc:
                if self.connected or not self.error:
                    log.warning(
                        "cluster: Redis unreachable (%s); each replica on its own view", exc
                    )
                self.connected, self.error = False, str(exc) or type(exc).__name__
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _resync(self, client: Any) -> None:
        """Read what the others said while this replica was away; say our own again."""
        for raw in (await client.hgetall(self.table)).values():
            with contextlib.suppress(ValueError, TypeError):
                self.apply(orjson.loads(raw))
        for message in list(self._mine.values()):
            with contextlib.suppress(asyncio.QueueFull):
                self._outbox.put_nowait(message)

    async def _listen(self, pubsub: Any) -> None:
        async for item in pubsub.listen():
            if item.get("type") != "message":
                continue
            with contextlib.suppress(ValueError, TypeError):
                self.apply(orjson.loads(item["data"]))

    async def _say(self, client: Any) -> None:
        while True:
            message = await self._outbox.get()
            data = orjson.dumps(message)
            field = message["target"]
            async with client.pipeline(transaction=False) as pipe:
                if message["state"] == "open":
                    pipe.hset(self.table, field, data)
                else:
                    pipe.hdel(self.table, field)
                pipe.publish(self.channel, data)
                await pipe.execute()

    async def _beat(self, client: Any) -> None:
        """Say this replica is here, what it is and which breakers it holds open."""
        while True:
            beat = {
                **self.about,
                **(self.report() if self.report is not None else {}),
                "replica": self.replica,
                "at": self.wall(),
                "open": sorted(self._mine),
                "held": sorted(k for k, until in self._held.items() if until > self.clock()),
            }
            await client.hset(self.roster, self.replica, orjson.dumps(beat))
            await asyncio.sleep(HEARTBEAT)

    def status(self) -> dict[str, Any]:
        """What ``/standby/health`` says of the cluster."""
        now = self.wall()
        return {
            "replica": self.replica,
            "redis": "connected" if self.connected else f"unreachable: {self.error or 'starting'}",
            "peers": {r: round(now - at, 1) for r, at in sorted(self.peers.items())},
            "applied": self.applied,
            "held": sorted(k for k, until in self._held.items() if until > self.clock()),
        }


def _shown(url: str) -> str:
    """The URL without its password."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, _ = head.partition("://")
    return f"{scheme}://***@{tail}"
