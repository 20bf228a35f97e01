"""Faults injected inside Standby's provider layer for a drill: the real provider is
never touched, and everything above the provider — attempts, breakers, continuation,
detection, incidents, notifications — meets the fault as it would meet the real one.

``Faulty`` wraps one provider.  For each attempt on a drilled target it asks the
``Injector`` whether this attempt gets the fault (a share of them, while the drill
lasts); if not, the attempt goes to the real provider untouched.

=========  =====================================================================
``outage``  the attempt fails at once with a 503 (the provider is down)
``429``     the attempt fails at once with a 429 and ``Retry-After``
``slow``    no first byte before the attempt's ``first_token`` deadline
``stall``   a stream stops after a few chunks and says nothing more (the idle
            deadline cuts it); a non-streamed attempt is ``slow``
``cut``     a stream breaks after a few chunks (a reset mid-answer); a
            non-streamed attempt fails as its connection would
=========  =====================================================================
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from standby.canonical import Call, Chunk, Deadlines, Reply
from standby.errors import DeadlineExceeded, StreamBroken, UpstreamKind, UpstreamStatus
from standby.plan.alerts import DRILL_FAULTS
from standby.providers.base import ChunkStream, Provider

FAULTS = DRILL_FAULTS
CHUNKS_BEFORE = 3  # content chunks a stalled or cut stream delivers first
RETRY_AFTER = 5.0  # seconds, the drilled 429's Retry-After


@dataclass(frozen=True, slots=True)
class Injection:
    """One drill's fault: on which target, how, for what share, until when."""

    drill: str  # the drill's id
    target: str  # "provider/model", or "provider" for every model of it
    fault: str  # one of FAULTS
    share: float  # of the attempts on the target, 0 < share <= 1
    until: float  # the injector's clock

    def covers(self, provider: str, model: str) -> bool:
        return self.target in (provider, f"{provider}/{model}")


class Injector:
    """The faults in force, shared by every wrapped provider of a process."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None
    ) -> None:
        self.clock = clock
        self.rng = rng or random.Random()
        self.injections: dict[str, Injection] = {}  # drill id → its fault
        self.injected: dict[str, int] = {}  # drill id → attempts that got it

    def add(self, injection: Injection) -> None:
        self.injections[injection.drill] = injection

    def remove(self, drill: str) -> None:
        self.injections.pop(drill, None)

    def fault_for(self, provider: str, model: str) -> Injection | None:
        """The fault this attempt gets, if any (drawn by each injection's share)."""
        if not self.injections:
            return None
        now = self.clock()
        for injection in list(self.injections.values()):
            if now >= injection.until:
                self.injections.pop(injection.drill, None)
                continue
            if injection.covers(provider, model) and self.rng.random() < injection.share:
                self.injected[injection.drill] = self.injected.get(injection.drill, 0) + 1
                return injection
        return None

    def drilling(self, target: str) -> str | None:
        """The drill under way on ``target`` ("provider/model"), if any."""
        provider, _, model = target.partition("/")
        now = self.clock()
        for injection in self.injections.values():
            if now < injection.until and injection.covers(provider, model):
                return injection.drill
        return None


class Faulty:
    """``inner``, with the injector's faults on the attempts they fall on."""

    def __init__(self, inner: Provider, injector: Injector) -> None:
        self.inner = inner
        self.injector = injector
        self.name = inner.name
        self.prefill = inner.prefill

    async def send(self, call: Call, deadlines: Deadlines) -> Reply:
        injection = self.injector.fault_for(self.name, str(call.body.get("model", "")))
        if injection is None:
            return await self.inner.send(call, deadlines)
        if injection.fault in ("stall", "slow"):
            await _silence(deadlines.first_token, "first_token", self.name)
        if injection.fault == "cut":
            raise StreamBroken(f"{self.name}: connection reset (drill {injection.drill})")
        raise _status(injection, self.name)

    async def open_stream(self, call: Call, deadlines: Deadlines) -> ChunkStream:
        injection = self.injector.fault_for(self.name, str(call.body.get("model", "")))
        if injection is None:
            return await self.inner.open_stream(call, deadlines)
        if injection.fault == "slow":
            await _silence(deadlines.first_token, "first_token", self.name)
        if injection.fault in ("outage", "429"):
            raise _status(injection, self.name)
        stream = await self.inner.open_stream(call, deadlines)
        return _Breaking(stream, injection, deadlines, self.name)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _status(injection: Injection, name: str) -> UpstreamStatus:
    if injection.fault == "429":
        return UpstreamStatus(
            f"{name}: 429 rate limited (drill {injection.drill})",
            status=429,
            kind=UpstreamKind.RATE_LIMITED,
            retry_after=RETRY_AFTER,
        )
    return UpstreamStatus(
        f"{name}: 503 unavailable (drill {injection.drill})",
        status=503,
        kind=UpstreamKind.UNAVAILABLE,
    )


async def _silence(seconds: float, phase: str, name: str) -> None:
    """Say nothing for as long as the deadline allows, then miss it."""
    await asyncio.sleep(max(0.0, seconds))
    raise DeadlineExceeded(f"{name}: no {phase.replace('_', ' ')} in time (drill)", phase=phase)


class _Breaking:
    """A real stream that breaks (``cut``) or goes silent (``stall``) after a few
    content chunks."""

    def __init__(
        self, inner: ChunkStream, injection: Injection, deadlines: Deadlines, name: str
    ) -> None:
        self.inner = inner
        self.injection = injection
        self.deadlines = deadlines
        self.name = name
        self.started = inner.started
        self.content = 0

    @property
    def buffered(self) -> bool:
        return self.content < CHUNKS_BEFORE and self.inner.buffered

    async def next(self) -> Chunk | None:
        if self.content >= CHUNKS_BEFORE:
            if self.injection.fault == "cut":
                raise StreamBroken(f"{self.name}: stream reset mid-answer (drill)")
            # silent: the router's idle watchdog cuts it (this is the backstop)
            await _silence(self.deadlines.idle * 2, "idle", self.name)
        chunk = await self.inner.next()
        if chunk is not None and chunk.content:
            self.content += 1
        return chunk

    async def aclose(self) -> None:
        await self.inner.aclose()
