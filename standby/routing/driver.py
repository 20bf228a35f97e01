"""The attempt loop of one request, shared by the non-streaming path and the stream engine.

``Attempts.run`` tries one step after another until a try returns: it waits out a step's
delay (a backoff, or a provider's Retry-After) and has the gate admit the step again once
the wait is over, gives each try its deadlines (the target's, clipped to the request's
budget), and on a ``ProviderError`` asks the ``AttemptSchedule`` for the next step — the plan
judges the error (``outcomes.judge``), tells the health gate, and applies the budget, the
failover order and the Retry-After holds; the failover is counted here.  What one try
*is* — one call to ``Provider.send``, or opening a stream up to its first content — is
the caller's function; everything around it is here, once.

``AttemptContext`` is what the loop needs from the gateway (providers, per-target
deadlines, metrics, clocks), built once per route by the router and injected: the stream
engine holds an ``Attempts``, never the router.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from standby.canonical import Deadlines, Endpoint
from standby.errors import ProviderError, UpstreamStatus
from standby.plan.model import Timeouts
from standby.plan.scale import Priority
from standby.providers.base import Provider
from standby.routing.attempts import AttemptSchedule, Clock, Step
from standby.routing.capabilities import Depth, needs
from standby.routing.policy import ResolvedRoute, Target
from standby.routing.watchdog import Timers

__all__ = ["AttemptContext", "Attempts", "Capacity", "RouteMetrics"]

T = TypeVar("T")


class Capacity(Protocol):
    """Targets' capacity (``capacity.guard.CapacityGuard``): a try of a limited target
    first takes one unit of its minute, or raises ``CapacityShort``."""

    def limited(self, provider: str, key: str) -> bool: ...

    async def take(self, provider: str, key: str, priority: Priority) -> None: ...

    def learn(self, key: str, requests: int | None, tokens: int | None) -> None:
        """The provider's rate-limit headers named ``key``'s limits per minute."""
        ...


class RouteMetrics(Protocol):
    def request_done(self, route: str, outcome: str, seconds: float) -> None: ...
    def failover(self, route: str) -> None: ...
    def first_token(self, route: str, seconds: float) -> None: ...
    def continuation(self, route: str, outcome: str) -> None: ...


@dataclass(frozen=True, slots=True)
class AttemptContext:
    """What running a route's attempts needs from the gateway, built once per route."""

    providers: Mapping[str, Provider]
    timeouts: Mapping[str, Timeouts]  # provider name → this route's deadlines there
    metrics: RouteMetrics
    clock: Clock
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    timers: Timers | None = None  # the streams' idle watchdogs; None: the running loop
    capacity: Capacity | None = None  # targets' limits; None: no target has one


class Attempts:
    """One request's attempts: its plan, run through the one attempt loop."""

    __slots__ = ("context", "in_flight", "plan", "route", "started")

    def __init__(
        self, context: AttemptContext, route: ResolvedRoute, plan: AttemptSchedule
    ) -> None:
        self.context = context
        self.route = route
        self.plan = plan
        self.in_flight: Step | None = None  # the try under way: started, outcome not known
        self.started = 0.0  # when it started (after its wait)

    # -- what a try needs ----------------------------------------------------------------
    def screen(self, body: dict[str, Any], endpoint: Endpoint = "chat") -> None:
        """Drop the candidates that cannot serve ``body`` (once; may raise a 400).

        Free when every target of the route supports everything (``Depth.NONE``).
        """
        if self.plan.screened or self.route.depth is Depth.NONE:
            return
        need = needs(body, self.route.depth)
        if endpoint == "embeddings":
            need = dataclasses.replace(need, embeddings=True)
        self.plan.screen(need, self.route.name)

    def provider(self, target: Target) -> Provider:
        return self.context.providers[target.provider]

    def timeouts(self, target: Target) -> Timeouts:
        """``target``'s deadlines on this route (not clipped to the budget)."""
        return self.context.timeouts[target.provider]

    def prefill(self, step: Step) -> bool:
        """Whether to continue an answer on ``step``'s target with an assistant prefill
        (the provider can, and the target was never seen refusing one).  Marks the step,
        so a refusal of this try is judged as a prefill refusal (F15)."""
        key = step.target.key
        step.prefill = (
            self.provider(step.target).prefill
            and key not in self.plan.refused_prefill
            and not self.plan.gate.refuses_prefill(key)
        )
        return step.prefill

    def elapsed(self) -> float:
        """Seconds since the try in flight started."""
        return self.context.clock() - self.started

    # -- the loop ------------------------------------------------------------------------
    async def run(
        self, attempt: Callable[[Step, Deadlines], Awaitable[T]], step: Step | None = None
    ) -> tuple[Step, T]:
        """Try ``attempt`` from ``step`` (default: the plan's first) until one returns.

        Returns the step that succeeded (still in flight: report it with ``responded``
        and ``succeeded``) and what the try returned.  Raises the final error, or
        ``Exhausted`` when the plan has nothing left to try.
        """
        if step is None:
            step = self.plan.first()
        while True:
            if step.delay:
                await self.context.sleep(step.delay)
                self.plan.waited(step)
            self.in_flight = step
            self.started = self.context.clock()
            deadlines = self.plan.deadlines_for(self.timeouts(step.target), step)
            try:
                capacity = self.context.capacity
                if capacity is not None:
                    target = step.target
                    if capacity.limited(target.provider, target.key):
                        await capacity.take(target.provider, target.key, self.plan.priority)
                return step, await attempt(step, deadlines)
            except ProviderError as error:
                step = self.failed(step, error)

    def failed(self, step: Step, error: ProviderError, *, mid_answer: bool = False) -> Step:
        """Report the try's failure; the next step, or raise the final error / ``Exhausted``
        (``mid_answer``: a stream broke after the client had received some of it)."""
        self.in_flight = None
        if (
            isinstance(error, UpstreamStatus)
            and error.limits != (None, None)
            and self.context.capacity is not None
        ):
            self.context.capacity.learn(step.target.key, *error.limits)
        nxt = self.plan.failed(
            step, error, self.context.clock() - self.started, mid_answer=mid_answer
        )
        if nxt.target != step.target:
            self.context.metrics.failover(self.route.name)
        return nxt

    def responded(self, step: Step) -> None:
        """The try's first byte arrived (a stream's headers, or a whole reply)."""
        self.plan.responded(step)

    def succeeded(self, step: Step) -> None:
        self.in_flight = None
        self.plan.succeeded(step, self.context.clock() - self.started)

    def abandon(self) -> None:
        """The step admitted last will not be tried or will not report: free it."""
        self.in_flight = None
        self.plan.abandon()

    def done(self, outcome: str) -> None:
        """The request is over (``ok``, ``error``, ``cancelled``, ``client_gone``…)."""
        self.context.metrics.request_done(
            self.route.name, outcome, self.context.clock() - self.plan.started
        )

    def gave_up(self, exc: BaseException) -> None:
        """The request ends with ``exc`` before an answer: free the try, count it."""
        self.abandon()
        self.done("cancelled" if isinstance(exc, asyncio.CancelledError) else "error")
