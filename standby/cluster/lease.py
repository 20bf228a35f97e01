"""One replica at a time runs the singleton jobs: a lease in Redis.

Probes, the incident detector, the providers' pages, notifications and their escalation,
deferred completion, the subscribers' deliveries and scheduled drills must run once for
the whole cluster — or every replica would open its own incident and page the on-call
person three times.  The replica that holds the lease runs them; the others stand by (each job asks
``leading()`` at every round).

The lease is a Redis key set only if absent, with an expiry (``SET NX PX``), renewed by
its holder every third of it by a script that extends it only if it is still its own.
Each acquisition takes a new fencing token (``INCR``), shown in ``status()``; a holder
that finds the key gone or another's stops leading at once.  A holder
killed outright stops renewing; another replica takes the lease when it expires (within
``ttl`` plus one try).

Redis unreachable: a replica cannot know who holds the lease, so it runs the jobs
itself — two replicas may then both run them for a while, which is better than none —
and says so in ``status()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from standby.cancellation import raise_if_cancelled

log = logging.getLogger("standby.cluster")

# extend the lease only if it is still ours: returns 1 when extended
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
# give it up only if it is ours
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class Lease:
    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        replica: str,
        ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.key = f"{prefix}:lease:singletons"
        self.tokens = f"{prefix}:lease:fence"
        self.replica = replica
        self.ttl = ttl
        self.clock = clock
        self.held = False
        self.token: int | None = None  # the fencing token of our current hold
        self.holder: str | None = None  # who holds it, as last read
        self.redis = "starting"
        self.changed = asyncio.Event()  # set at each change of who runs the jobs here

    def leading(self) -> bool:
        """Whether this replica runs the singleton jobs now (what they ask each round)."""
        return self.held

    async def run(self) -> None:
        """Hold the lease when it is free, renew it while held; until cancelled (then it
        is given up, so another replica need not wait for it to expire)."""
        client = aioredis.from_url(self.url, socket_connect_timeout=2, socket_timeout=2)
        renew = client.register_script(_RENEW)
        release = client.register_script(_RELEASE)
        try:
            while True:
                try:
                    if self.held:
                        kept = await renew(
                            keys=[self.key], args=[self.replica, int(self.ttl * 1000)]
                        )
                        if not kept:
                            log.warning("cluster: lease lost; the singleton jobs stop here")
                            self._set(False)
                    else:
                        won = await client.set(
                            self.key, self.replica, nx=True, px=int(self.ttl * 1000)
                        )
                        if won:
                            self.token = int(await client.incr(self.tokens))
                            log.warning(
                                "cluster: this replica (%s) holds the lease (token %d); "
                                "running the singleton jobs",
                                self.replica,
                                self.token,
                            )
                            self._set(True)
                        else:
                            holder = await client.get(self.key)
                            self.holder = holder.decode() if holder else None
                    self.redis = "connected"
                except (RedisError, OSError) as exc:
                    raise_if_cancelled(exc)  # redis-py may turn a cancellation into its own
                    if not self.redis.startswith("unreachable"):
                        log.warning(
                            "cluster: Redis unreachable (%s); running the singleton jobs here", exc
                        )
                    self.redis = f"unreachable: {exc or type(exc).__name__}"
                    if not self.held:  # nobody can be known to hold them: run them here
                        self._set(True)
                await asyncio.sleep(self.ttl / 3)
        finally:
            if self.held:
                self._set(False)
                with contextlib.suppress(RedisError, OSError):
                    await release(keys=[self.key], args=[self.replica])
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    def _set(self, held: bool) -> None:
        self.held = held
        self.holder = self.replica if held else None
        if not held:
            self.token = None
        self.changed.set()

    def status(self) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "held_here": self.held,
            "token": self.token,
            "ttl_s": self.ttl,
            "redis": self.redis,
        }
