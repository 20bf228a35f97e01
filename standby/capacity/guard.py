"""The backup capacity guard: a target is never sent more than its limit, and when its
minute runs short, the clients that matter most keep what is left.

A target's limit comes from the plan (``providers.<name>.limits``: the account's, shared
by all its models) or, when the plan sets none, from what the provider says in its
rate-limit headers (``learn``: per model, as OpenAI and Anthropic count).  Each try of a
limited target first takes one unit of its minute from the ledger (``take``).  A client
of priority ``p`` may fill the minute only up to ``share[p]`` of the limit
(``capacity.shares``; by default low 60 %, normal 90 %, high all of it), so low-priority
traffic is turned away while high-priority traffic still has room.  A refusal is a
``CapacityShort``: the attempt loop passes to the next candidate without counting
anything against the target, and when nothing is left the caller gets a 429 with
Retry-After, or a deferral where the route allows one.

Tokens per minute are a budget: the tokens of the answers a target gave are counted
after the fact (``spent``), and a try is refused while the minute's count is at the cap.

A target without a limit costs nothing here (one dict lookup); a limited one costs one
ledger ask per try, in Redis when replicas share a ``state.url``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from standby.capacity.ledger import Ledger
from standby.errors import CapacityShort
from standby.plan.model import Plan
from standby.plan.scale import Priority

log = logging.getLogger("standby.capacity")

MINUTE = 60.0
AHEAD = 0.1  # seconds: units taken ahead are spent within this, or lost
MAX_AHEAD = 64  # units taken ahead at once, at most


@dataclass(slots=True)
class _Ahead:
    """A target's units taken ahead, and how fast this replica has been spending them."""

    left: int = 0  # units taken and not yet spent
    until: float = 0.0  # they are counted up to here: spend them before it, or not at all
    second: float = 0.0  # the second being counted
    count: int = 0  # tries this second
    rate: float = 0.0  # tries per second, the last full second


class CapacityGuard:
    def __init__(
        self, plan: Plan, ledger: Ledger, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ledger = ledger
        self.clock = clock
        self._ahead: dict[str, _Ahead] = {}  # counted-as scope → units taken ahead
        self._tasks: set[asyncio.Task[None]] = set()
        self.learned: dict[str, tuple[int | None, int | None]] = {}  # key → (rpm, tpm)
        self.refused: dict[str, int] = {}  # target key → tries refused for capacity
        self.reload(plan)

    def reload(self, plan: Plan) -> None:
        self.shares: Mapping[Priority, float] = dict(plan.capacity.shares)
        self._planned = {
            name: (config.limits.requests_per_minute, config.limits.tokens_per_minute)
            for name, config in plan.providers.items()
            if config.limits.requests_per_minute or config.limits.tokens_per_minute
        }
        self._limits: dict[str, tuple[str, int | None, int | None]] = {}  # resolved, per key
        self._tokens_planned = any(tpm for _, tpm in self._planned.values())

    @property
    def counts_tokens(self) -> bool:
        """Whether some target has a token limit (answers' tokens are then counted)."""
        return self._tokens_planned or any(tpm for _, tpm in self.learned.values())

    def limits(self, provider: str, key: str) -> tuple[str, int | None, int | None]:
        """What limits a try of ``key``: the plan's limits count the provider's account
        as a whole, learned ones the one model; → (counted as, requests, tokens)."""
        found = self._limits.get(key)
        if found is None:
            planned = self._planned.get(provider)
            if planned is not None:
                found = (provider, *planned)
            else:
                found = (key, *self.learned.get(key, (None, None)))
            if len(self._limits) < 10_000:
                self._limits[key] = found
        return found

    def limited(self, provider: str, key: str) -> bool:
        _, rpm, tpm = self.limits(provider, key)
        return rpm is not None or tpm is not None

    def cap(self, limit: int, priority: Priority) -> int:
        """How much of ``limit`` a client of ``priority`` may fill."""
        return max(1 if priority == "high" else 0, math.floor(limit * self.shares[priority]))

    async def take(self, provider: str, key: str, priority: Priority) -> None:
        """One try of ``key`` for a client of ``priority``, or ``CapacityShort``."""
        scope, rpm, tpm = self.limits(provider, key)
        if tpm is not None:
            cap = self.cap(tpm, priority)
            budget = await self.ledger.check(f"target-tokens:{scope}", cap, MINUTE)
            if not budget.granted:
                self._refuse(key, scope, "tokens", tpm, priority, budget.retry_after)
        if rpm is not None:
            if await self._ahead_of_time(scope, rpm):
                return
            grant = await self.ledger.take(f"target:{scope}", self.cap(rpm, priority), MINUTE)
            if not grant.granted:
                self._refuse(key, scope, "requests", rpm, priority, grant.retry_after)

    async def _ahead_of_time(self, scope: str, rpm: int) -> bool:
        """Whether a unit taken ahead pays for this try.

        Asking the ledger for every try costs a Redis round trip (+0.33 ms p50 measured,
        ``bench/capacity_bench.py``).  At a steady rate, a replica takes the next
        ``AHEAD`` seconds' worth of units in one ask — but only while they fit under the
        *lowest* priority's share, so spending them can never break a share — dated at the
        end of that time, so each is counted at least as long as its request.  Units not
        spent in time are lost (the minute is then far from full anyway); near the cap,
        every try asks on its own.
        """
        now = self.clock()
        ahead = self._ahead.get(scope)
        if ahead is None:
            if len(self._ahead) >= 10_000:
                self._ahead.clear()
            ahead = self._ahead[scope] = _Ahead(second=now)
        if now - ahead.second >= 1.0:
            ahead.rate = ahead.count / (now - ahead.second) if now - ahead.second < 2.0 else 0.0
            ahead.second, ahead.count = now, 0
        ahead.count += 1
        if ahead.left > 0 and now < ahead.until:
            ahead.left -= 1
            return True
        want = min(MAX_AHEAD, int(ahead.rate * AHEAD))
        if want < 2:
            return False
        grant = await self.ledger.take(
            f"target:{scope}", self.cap(rpm, "low"), MINUTE, want=want, hold=AHEAD
        )
        if not grant.granted:
            return False
        ahead.left, ahead.until = want - 1, now + AHEAD  # before the ask: never late
        return True

    def _refuse(
        self, key: str, scope: str, kind: str, limit: int, priority: Priority, wait: float
    ) -> None:
        self.refused[key] = self.refused.get(key, 0) + 1
        share = self.shares[priority]
        kept = "" if share >= 1.0 else f" ({round(share * 100)}% of it for {priority} priority)"
        raise CapacityShort(
            f"{scope} has no {kind} left this minute: its limit is {limit}/min{kept}",
            retry_after=max(wait, 0.001),
            target=key,
        )

    def spent_soon(self, provider: str, model: str, tokens: int) -> None:
        """``spent``, in the background (from a journal call, which never waits)."""
        task = asyncio.get_running_loop().create_task(self._spent(provider, model, tokens))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spent(self, provider: str, model: str, tokens: int) -> None:
        try:
            await self.spent(provider, model, tokens)
        except Exception:  # never fails a request: the count is best effort
            log.exception("capacity: could not count %s tokens of %s", tokens, provider)

    async def spent(self, provider: str, model: str, tokens: int) -> None:
        """``provider`` answered as ``model`` with ``tokens`` in all (prompt and answer)."""
        scope, _, tpm = self.limits(provider, f"{provider}/{model}")
        if tokens > 0 and tpm is not None:
            await self.ledger.add(f"target-tokens:{scope}", tokens, MINUTE)

    def learn(self, key: str, requests: int | None, tokens: int | None) -> None:
        """The provider's rate-limit headers named ``key``'s limits (the plan's win)."""
        if (requests, tokens) == self.learned.get(key) or (requests is None and tokens is None):
            return
        self.learned[key] = (requests, tokens)
        self._limits.pop(key, None)
        log.info(
            "capacity: %s says its limits are %s requests and %s tokens/min", key, requests, tokens
        )

    def status(self) -> dict[str, Any]:
        return {
            **self.ledger.status(),
            "shares": dict(self.shares),
            "limits": {
                scope: {"requests_per_minute": rpm, "tokens_per_minute": tpm}
                for scope, rpm, tpm in sorted(set(self._limits.values()))
                if rpm is not None or tpm is not None
            },
            "refused": dict(sorted(self.refused.items())),
        }
