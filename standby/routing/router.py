"""The router: a request's model → its route → attempts until one target answers.

Non-streaming requests are served here; streams are handed to ``routing.streams``.
Before the first try, the route's candidates are screened against what the request needs
(``routing.capabilities``), reading the body only as deep as the route's targets require.
Everything it needs comes in through the constructor: the plan, the providers by name,
the health gate, metrics, a clock and a random source.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from standby.canonical import Call, Endpoint, Reply
from standby.errors import InvalidRequest, ModelNotFound, ProviderError
from standby.plan.model import Plan, Timeouts
from standby.plan.model import Route as RouteConfig
from standby.providers.base import Provider
from standby.routing.attempts import AttemptPlan, AttemptRecord, HealthGate, Step
from standby.routing.capabilities import Depth, needs
from standby.routing.policy import ResolvedRoute, RouteTable, Target, aim, candidate_order
from standby.routing.sink import JournalSink

if TYPE_CHECKING:
    from standby.routing.streams import StreamRun

__all__ = ["Completion", "RouteMetrics", "Router", "aim"]


MAX_MODEL_NAME = 256  # characters of an asked model name


class RouteMetrics(Protocol):
    def request_done(self, route: str, outcome: str, seconds: float) -> None: ...
    def failover(self, route: str) -> None: ...
    def first_token(self, route: str, seconds: float) -> None: ...
    def continuation(self, route: str, outcome: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Completion:
    reply: Reply
    target: Target
    history: list[AttemptRecord]  # tries, and candidates screened out (``skipped_<reason>``)
    attempts: int = 1  # tries only


class Router:
    def __init__(
        self,
        plan: Plan,
        providers: Mapping[str, Provider],
        gate: HealthGate,
        metrics: RouteMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.plan = plan
        self.providers = providers
        self.gate = gate
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()
        self.table = RouteTable(plan.routes, plan.providers, plan.models)
        self._route_timeouts = {
            name: route.timeouts.apply(plan.timeouts) for name, route in plan.routes.items()
        }
        self._provider_timeouts = {name: p.timeouts for name, p in plan.providers.items()}
        self.learned_no_prefill: set[str] = set()  # providers that refused a prefill (F15)

    def resolve(self, model: Any) -> ResolvedRoute:
        if not isinstance(model, str) or not model:
            raise ModelNotFound("you must provide a model parameter", param="model")
        if not model.isprintable() or len(model) > MAX_MODEL_NAME:
            # it would become an x-standby-model header and a provider's URL or body
            raise InvalidRequest(
                f"Invalid 'model': a model name is at most {MAX_MODEL_NAME} printable characters.",
                param="model",
            )
        route = self.table.resolve(model)
        if route is None:
            raise ModelNotFound(
                f"The model `{model}` does not exist or you do not have access to it.",
                param="model",
            )
        if not route.tiers:
            raise ModelNotFound(
                f"The model `{model}` has no equivalent at any target of route "
                f"`{route.name}` (see the plan's models table).",
                param="model",
            )
        return route

    def stream(
        self,
        body: dict[str, Any],
        route: ResolvedRoute,
        *,
        journal: JournalSink | None = None,
        rid: str = "",
        on_disconnect: Literal["cancel", "finish"] = "cancel",
    ) -> StreamRun:
        """The stream engine for one streaming request (``StreamRun.start`` opens it)."""
        from standby.routing.streams import StreamRun  # until streams stops importing Router

        return StreamRun(self, body, route, journal=journal, rid=rid, on_disconnect=on_disconnect)

    def route_config(self, route: ResolvedRoute) -> RouteConfig:
        """The plan's record of ``route`` (its defer and store settings)."""
        return self.plan.routes[route.name]

    def attempt_plan(self, route: ResolvedRoute, body: dict[str, Any] | None = None) -> AttemptPlan:
        """A fresh attempt plan; with ``body``, already screened (may raise a 400)."""
        plan = AttemptPlan(
            candidates=candidate_order(route, self.rng),
            gate=self.gate,
            timeouts=self._route_timeouts[route.name],
            retry=self.plan.retry,
            clock=self.clock,
            rng=self.rng,
        )
        if body is not None:
            self.screen(plan, route, body)
        return plan

    def screen(
        self,
        plan: AttemptPlan,
        route: ResolvedRoute,
        body: dict[str, Any],
        endpoint: Endpoint = "chat",
    ) -> None:
        """Drop the plan's candidates that cannot serve ``body`` (once per plan).

        Free when every target of the route supports everything (``Depth.NONE``).
        """
        if plan.screened or route.depth is Depth.NONE:
            return
        need = needs(body, route.depth)
        if endpoint == "embeddings":
            need = dataclasses.replace(need, embeddings=True)
        plan.screen(need, route.name)

    def timeouts_for(self, plan: AttemptPlan, target: Target) -> Timeouts:
        return self._provider_timeouts[target.provider].apply(plan.timeouts)

    def provider(self, target: Target) -> Provider:
        return self.providers[target.provider]

    async def complete(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        route: ResolvedRoute,
        plan: AttemptPlan | None = None,
    ) -> Completion:
        """Try targets until one gives a usable reply; raise the final error otherwise.

        Pass ``plan`` to read its attempt history after a failure.
        """
        plan = plan or self.attempt_plan(route)
        try:
            self.screen(plan, route, body, endpoint)
            step: Step = plan.first()
            while True:
                if step.delay:
                    await asyncio.sleep(step.delay)
                started = self.clock()
                call = Call(endpoint=endpoint, body=aim(body, step.target))
                try:
                    reply = await self.provider(step.target).send(
                        call, plan.deadlines_for(self.timeouts_for(plan, step.target), step)
                    )
                except ProviderError as error:
                    previous = step.target
                    step = plan.failed(step, error, self.clock() - started)
                    if step.target != previous:
                        self.metrics.failover(route.name)
                    continue
                plan.responded(step)
                plan.succeeded(step, self.clock() - started)
                self.metrics.request_done(route.name, "ok", self.clock() - plan.started)
                return Completion(
                    reply=reply, target=step.target, history=plan.history, attempts=plan.attempts
                )
        except BaseException as exc:
            plan.abandon()
            outcome = "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
            self.metrics.request_done(route.name, outcome, self.clock() - plan.started)
            raise
