"""The router: a request's model → its route → attempts until one target answers.

It resolves routes and builds, per request, the ``AttemptSchedule`` (candidate order, budget)
and the ``Attempts`` that run it (``routing.driver``: the one attempt loop).  A
non-streaming request is one ``Provider.send`` per try (``complete``); a stream is handed
to the stream engine (``stream`` → ``routing.streams.StreamRun``) with its ``Attempts``,
not with the router.  Before the first try, the route's candidates are screened against
what the request needs (``routing.capabilities``), reading the body only as deep as the
route's targets require.  Everything it needs comes in through the constructor: the
plan, the providers by name, the health gate, metrics, a clock and a random source.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from standby.canonical import Call, Deadlines, Endpoint, Reply
from standby.errors import InvalidRequest, ModelNotFound
from standby.plan.model import Plan, RouteConfig
from standby.plan.scale import Priority
from standby.providers.base import Provider
from standby.routing.attempts import AttemptRecord, AttemptSchedule, HealthGate, Step
from standby.routing.driver import AttemptContext, Attempts, Capacity, RouteMetrics
from standby.routing.policy import ResolvedRoute, RouteTable, Target, aim, candidate_order
from standby.routing.sink import JournalSink
from standby.routing.streams import StreamRun

__all__ = ["Completion", "RouteMetrics", "Router", "aim"]


MAX_MODEL_NAME = 256  # characters of an asked model name


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
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        capacity: Capacity | None = None,
    ) -> None:
        """``clock`` and ``sleep`` time the attempts and their waits (tests move both);
        ``capacity``: the targets' limits, checked before each try of a limited one."""
        self.plan = plan
        self.providers = providers
        self.gate = gate
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()
        self.table = RouteTable(plan.routes, plan.providers, plan.models)
        # per route, computed once (not per request): its deadlines, at each provider
        # too, and its retry settings
        self._route_timeouts = {
            name: route.timeouts.apply(plan.timeouts) for name, route in plan.routes.items()
        }
        self._retry = {name: route.retry.apply(plan.retry) for name, route in plan.routes.items()}
        self._contexts = {
            name: AttemptContext(
                providers=providers,
                timeouts={
                    provider: config.timeouts.apply(timeouts)
                    for provider, config in plan.providers.items()
                },
                metrics=metrics,
                clock=self.clock,
                sleep=sleep,
                capacity=capacity,
            )
            for name, timeouts in self._route_timeouts.items()
        }

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
        priority: Priority = "normal",
    ) -> StreamRun:
        """The stream engine for one streaming request (``StreamRun.start`` opens it)."""
        return StreamRun(
            self.attempts(route, self.attempt_schedule(route, priority=priority)),
            body,
            journal=journal,
            rid=rid,
            on_disconnect=on_disconnect,
        )

    def route_config(self, route: ResolvedRoute) -> RouteConfig:
        """The plan's record of ``route`` (its defer and store settings)."""
        return self.plan.routes[route.name]

    def attempt_schedule(
        self,
        route: ResolvedRoute,
        body: dict[str, Any] | None = None,
        *,
        priority: Priority = "normal",
    ) -> AttemptSchedule:
        """A fresh attempt schedule; with ``body``, already screened (may raise a 400);
        ``priority``: the client's, which decides how much of a short target it may use."""
        plan = AttemptSchedule(
            candidates=candidate_order(route, self.rng),
            gate=self.gate,
            timeouts=self._route_timeouts[route.name],
            retry=self._retry[route.name],
            clock=self.clock,
            rng=self.rng,
            priority=priority,
        )
        if body is not None:
            Attempts(self._contexts[route.name], route, plan).screen(body)
        return plan

    def attempts(self, route: ResolvedRoute, plan: AttemptSchedule | None = None) -> Attempts:
        """The attempt loop of one request on ``route`` (with a fresh plan by default)."""
        if plan is None:
            plan = self.attempt_schedule(route)
        return Attempts(self._contexts[route.name], route, plan)

    async def complete(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        route: ResolvedRoute,
        plan: AttemptSchedule | None = None,
    ) -> Completion:
        """Try targets until one gives a usable reply; raise the final error otherwise.

        Pass ``plan`` to read its attempt history after a failure.
        """
        attempts = self.attempts(route, plan)

        async def send(step: Step, deadlines: Deadlines) -> Reply:
            call = Call(endpoint=endpoint, body=aim(body, step.target))
            return await attempts.provider(step.target).send(call, deadlines)

        try:
            attempts.screen(body, endpoint)
            step, reply = await attempts.run(send)
            attempts.responded(step)
            attempts.succeeded(step)
            attempts.done("ok")
        except BaseException as exc:
            attempts.gave_up(exc)
            raise
        done = attempts.plan
        return Completion(
            reply=reply, target=step.target, history=done.history, attempts=done.attempts
        )
