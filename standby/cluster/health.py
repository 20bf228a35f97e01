"""Breaker states and attempts' outcomes shared by the replicas of one gateway, through
Redis.

Each replica keeps its own health registry, and requests read only that: no Redis round
trip on the hot path.  Three kinds of news go through one pub/sub channel:

* **Openings and closings.**  When a replica's breaker for a target opens (or opens again,
  its trial failed), it says so (and keeps it in a hash, for a replica that starts or
  reconnects later); every other replica's breaker then *follows* it: open until the
  same end plus ``GRACE``, with no trial of its own before (``Breaker.follow``), so only
  the opener tries the target when the ejection ends, and says how it went — open again
  (the others follow the new end) or closed (the others close: ``Breaker.lift``).  A
  follower that hears nothing more tries the target itself when its period ends.
* **Failures** (``cluster.failures``), told within milliseconds in batches, which the
  others add to their breakers' counts: the cluster opens after about as many failures
  as one replica would, not that many per replica.
* **Each second's outcomes** (``cluster.summaries``), which the others add to their
  signals: the replica that detects incidents judges the whole cluster's traffic.

A replica never applies its own messages.  Everything is noted on the event loop and
told by tasks of this module (``relay`` is the gate's observer).

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
import math
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from standby.cancellation import raise_if_cancelled
from standby.cluster.relay import Relay
from standby.cluster.summaries import decode, encode
from standby.health.gate import RegistryGate
from standby.watch.signals import Signals

log = logging.getLogger("standby.cluster")

RETRY_MIN, RETRY_MAX = 0.2, 5.0  # seconds between two tries to reach Redis
HEARTBEAT = 2.0  # seconds between two "I am here" of a replica
# a follower's period outlasts the opener's ejection by this much: when the ejection ends,
# the opener tries the target once (half-open) and says the outcome — open again or
# closed — before a follower's own period ends (without it, each replica sent requests to
# a still-failing target at every end of an ejection)
GRACE = 0.5
QUEUE = 1024  # transitions waiting to be said; more are dropped (the hash has the latest)
TELL_GAP = 0.005  # seconds between two batches of failures: a burst is one message
TELL_AFTER = 0.05  # seconds after a second is over before its summary goes (late notes)
# a malformed message from a peer is dropped, whatever it trips on
_MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError)


class SharedHealth:
    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        gate: Callable[[], RegistryGate],
        replica: str | None = None,
        about: dict[str, Any] | None = None,
        report: Callable[[], dict[str, Any]] | None = None,
        signals: Signals | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """``gate``: the current gateway's health gate (a reload builds another), which the
        others' word goes through; ``signals``: this process's signals, to which the
        others' seconds are added, and ``relay`` (the gate's observer) passes this
        replica's outcomes on."""
        self.url = url
        self.channel = f"{prefix}:health"
        self.table = f"{prefix}:breakers"
        self.roster = f"{prefix}:replicas"  # replica → its heartbeat (what it is, when)
        self.about = dict(about or {})  # what a heartbeat says of this replica
        self.report = report  # and what it says of its state now (its journal's lag)
        self.gate = gate
        self.signals = signals
        self.replica = replica or secrets.token_hex(4)
        self.clock, self.wall = clock, wall
        self.relay = Relay(signals, wall=wall)
        self.connected = False
        self.error = ""
        self.applied = 0  # peers' openings followed here
        self.heard = 0  # peers' batches of failures counted here
        self.merged = 0  # peers' seconds added to the signals here
        self.peers: dict[str, float] = {}  # replica → when it last said something (wall)
        self._following: dict[str, float] = {}  # target → until (monotonic) we follow
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE)
        self._mine: dict[str, dict[str, Any]] = {}  # target → our last open message
        self.changed = asyncio.Event()  # set at each peer's message applied (for waiters)

    # -- from this replica's gate (on the event loop, never waits) -----------------------------
    def transition(self, key: str, state: str, open_until: float | None) -> None:
        """This replica's breaker for ``key`` changed: say it to the others."""
        if state == "open" and open_until is not None:
            if self.gate().registry.get(key).breaker.following:
                return  # a peer's opening, which it said itself
            left = max(0.0, open_until - self.clock())
            message = {
                "replica": self.replica,
                "target": key,
                "state": "open",
                "until": self.wall() + left,
                "period": left,
                "at": self.wall(),
            }
            self._mine[key] = message
            self._following.pop(key, None)
        elif state == "closed":
            self._mine.pop(key, None)
            message = {"replica": self.replica, "target": key, "state": "closed", "at": self.wall()}
        else:
            return  # half-open: a trial is under way, nothing for the others yet
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(message)

    # -- applying the others' ---------------------------------------------------------------
    def apply(self, message: dict[str, Any]) -> bool:
        """A peer's message; ``True`` when it changed this replica's view.  A malformed
        one raises ``ValueError``, ``TypeError``, ``KeyError``…"""
        replica = message.get("replica")
        if not isinstance(replica, str) or replica == self.replica:
            return False
        self.peers[replica] = float(message.get("at") or self.wall())
        kind = message.get("kind")
        if kind == "failures":
            changed = self._count_failures(message["targets"])
        elif kind == "signals":
            changed = self._merge_second(int(message["second"]), message["targets"])
        else:
            changed = self._follow(message)
        if changed:
            self.changed.set()
        return changed

    def _follow(self, message: dict[str, Any]) -> bool:
        key = message.get("target")
        if not isinstance(key, str):
            return False
        gate = self.gate()
        if message.get("state") == "open":
            remaining = float(message["until"]) + GRACE - self.wall()
            now = self.clock()
            period = message.get("period")
            if not gate.follow(
                key, now, now + remaining, None if period is None else float(period)
            ):
                return False
            self._following[key] = now + remaining
            self._mine.pop(key, None)  # theirs is the opening now; ours is over
            self.applied += 1
            return True
        if message.get("state") == "closed":
            self._following.pop(key, None)
            if gate.lift(key, self.clock()):
                self._mine.pop(key, None)
                return True
        return False

    def _count_failures(self, targets: dict[str, Any]) -> bool:
        gate = self.gate()
        for key, (reset, failures) in targets.items():
            reset, failures = bool(reset), int(failures)
            gate.add_peer_failures(key, failures, reset=reset)
            self.relay.failures.heard(key, reset, failures)
        self.heard += 1
        return True

    def _merge_second(self, number: int, targets: dict[str, Any]) -> bool:
        if self.signals is None:
            return False
        shift = self.clock() - self.wall()  # wall clock → ours
        for key, data in targets.items():
            self.signals.merge(key, decode(data, number, shift), number + 0.5 + shift)
        self.merged += 1
        return True

    # -- running ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Keep connected to Redis, say this replica's news, apply the others'."""
        delay = RETRY_MIN
        while True:
            client = aioredis.from_url(self.url, socket_connect_timeout=2, socket_timeout=None)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    await self._resync(client)
                    self.connected, self.error, delay = True, "", RETRY_MIN
                    log.warning("cluster: sharing breaker states through %s", _shown(self.url))
                    tasks = [
                        asyncio.create_task(job(client))
                        for job in (self._say, self._beat, self._tell_failures, self._tell_seconds)
                    ]
                    try:
                        await self._listen(pubsub)
                    finally:
                        for task in tasks:
                            task.cancel()
                        for task in tasks:
                            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                                await task
            except (RedisError, OSError) as exc:
                raise_if_cancelled(exc)  # redis-py may turn a cancellation into its own
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
        """Read what the others said while this replica was away; say our own again.
        Failures not yet told are stale by now: forgotten."""
        self.relay.failures.clear()
        for raw in (await client.hgetall(self.table)).values():
            with contextlib.suppress(*_MALFORMED):
                self.apply(orjson.loads(raw))
        for message in list(self._mine.values()):
            with contextlib.suppress(asyncio.QueueFull):
                self._outbox.put_nowait(message)

    async def _listen(self, pubsub: Any) -> None:
        async for item in pubsub.listen():
            if item.get("type") != "message":
                continue
            with contextlib.suppress(*_MALFORMED):
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

    async def _tell_failures(self, client: Any) -> None:
        """Tell the failures (and resets) noted, a batch at a time, as they come."""
        news, tally = self.relay.news, self.relay.failures
        while True:
            await news.wait()
            news.clear()
            told = tally.drain()
            if told:
                message = {
                    "kind": "failures",
                    "replica": self.replica,
                    "at": self.wall(),
                    "targets": {key: [p.reset, p.failures] for key, p in told.items()},
                }
                await client.publish(self.channel, orjson.dumps(message))
            await asyncio.sleep(TELL_GAP)

    async def _tell_seconds(self, client: Any) -> None:
        """Tell each second's outcomes once it is over."""
        while True:
            now = self.wall()
            await asyncio.sleep(math.floor(now) + 1.0 - now + TELL_AFTER)
            for number, targets in self.relay.summaries.drain(self.wall()):
                if not targets:
                    continue
                message = {
                    "kind": "signals",
                    "replica": self.replica,
                    "at": self.wall(),
                    "second": number,
                    "targets": {key: encode(bucket) for key, bucket in targets.items()},
                }
                await client.publish(self.channel, orjson.dumps(message))

    async def _beat(self, client: Any) -> None:
        """Say this replica is here, what it is and which breakers it holds open."""
        while True:
            beat = {
                **self.about,
                **(self.report() if self.report is not None else {}),
                "replica": self.replica,
                "at": self.wall(),
                "open": sorted(self._mine),
                "held": self.followed(),
            }
            await client.hset(self.roster, self.replica, orjson.dumps(beat))
            await asyncio.sleep(HEARTBEAT)

    def followed(self) -> list[str]:
        """The targets this replica skips because another replica opened them."""
        now = self.clock()
        for key in [k for k, until in self._following.items() if until <= now]:
            del self._following[key]
        registry = self.gate().registry
        return sorted(key for key in self._following if registry.get(key).breaker.following)

    def status(self) -> dict[str, Any]:
        """What ``/standby/health`` says of the cluster."""
        now = self.wall()
        return {
            "replica": self.replica,
            "redis": "connected" if self.connected else f"unreachable: {self.error or 'starting'}",
            "peers": {r: round(now - at, 1) for r, at in sorted(self.peers.items())},
            "open": sorted(self._mine),
            "applied": self.applied,
            "failures_heard": self.heard,
            "seconds_merged": self.merged,
            "held": self.followed(),
        }


def _shown(url: str) -> str:
    """The URL without its password."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, _ = head.partition("://")
    return f"{scheme}://***@{tail}"
