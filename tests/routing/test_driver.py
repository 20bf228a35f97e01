"""The one attempt loop, through ``Router.complete``: scripted providers, a hand-moved
clock whose sleep moves it, and the real health gate where the health effect matters."""

from __future__ import annotations

import random
from typing import Any

import pytest

from standby.errors import Exhausted, LocalLimit, UpstreamStatus
from standby.health.gate import OpenGate, RegistryGate
from standby.health.registry import HealthRegistry
from standby.metrics import Metrics as PrometheusMetrics
from standby.plan.model import Plan
from standby.routing.attempts import HealthGate
from standby.routing.router import Router
from tests.routing.doubles import Clock, Metrics, Replies, reply

BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def plan(**route: Any) -> Plan:
    return Plan.model_validate(
        {
            "providers": {
                "a": {"base_url": "http://127.0.0.1:9"},
                "b": {"base_url": "http://127.0.0.1:9"},
            },
            "retry": {"backoff": "100ms", "max_backoff": "1s"},
            "routes": {
                "m": {"targets": ["a/m", "b/m"], **route},
                "plain": {"targets": ["a/m", "b/m"]},
            },
        }
    )


class Setup:
    def __init__(
        self, a: Replies, b: Replies, *, gate: HealthGate | None = None, **route: Any
    ) -> None:
        self.a, self.b = a, b
        self.clock = Clock()
        self.metrics = Metrics()
        self.router = Router(
            plan(**route),
            {"a": a, "b": b},
            gate or OpenGate(),
            self.metrics,
            clock=self.clock,
            rng=random.Random(1),
            sleep=self.clock.sleep,
        )

    async def ask(self, model: str = "m") -> Any:
        return await self.router.complete("chat", BODY, self.router.resolve(model))


def too_many(retry_after: float) -> UpstreamStatus:
    return UpstreamStatus("slow down", status=429, kind="rate_limited", retry_after=retry_after)


async def test_a_transient_500_is_retried_on_the_same_target_after_a_backoff() -> None:
    s = Setup(
        Replies("a", UpstreamStatus("x", status=500, kind="server_error"), reply()), Replies("b")
    )
    done = await s.ask()
    assert (done.target.key, done.attempts) == ("a/m", 2)
    assert len(s.clock.slept) == 1 and 0.05 <= s.clock.slept[0] <= 0.1
    assert s.metrics.failovers == 0 and s.metrics.outcomes == ["ok"]
    assert [r.outcome for r in done.history] == ["server_error", "ok"]


async def test_a_429_fails_over_at_once_by_default() -> None:
    s = Setup(Replies("a", too_many(0.5)), Replies("b", reply()))
    done = await s.ask()
    assert done.target.key == "b/m" and s.clock.slept == []
    assert s.metrics.failovers == 1


@pytest.mark.parametrize("model", ["m", "plain"])
async def test_prefer_same_target_per_route_waits_out_retry_after(model: str) -> None:
    s = Setup(
        Replies("a", too_many(0.5), reply()),
        Replies("b", reply()),
        retry={"prefer_same_target": True},
    )
    done = await s.ask(model)
    if model == "m":  # the route's override
        assert (done.target.key, done.attempts, s.clock.slept) == ("a/m", 2, [0.5])
        assert s.b.calls == [] and s.metrics.failovers == 0
    else:  # the plan's default on another route
        assert (done.target.key, s.clock.slept) == ("b/m", [])


async def test_prefer_same_target_never_waits_beyond_max_retry_after() -> None:
    s = Setup(
        Replies("a", too_many(30)),
        Replies("b", reply()),
        retry={"prefer_same_target": True, "max_retry_after": "5s"},
    )
    done = await s.ask()
    assert done.target.key == "b/m" and s.clock.slept == []


async def test_local_limits_only_exhaust_with_standbys_limit_and_no_health_record() -> None:
    registry = HealthRegistry(plan().breaker)
    gate = RegistryGate(registry, PrometheusMetrics())
    s = Setup(
        Replies("a", LocalLimit("a: no connection slot")),
        Replies("b", LocalLimit("b: no connection slot")),
        gate=gate,
    )
    with pytest.raises(Exhausted) as caught:
        await s.ask()
    assert isinstance(caught.value.last, LocalLimit)
    for key in ("a/m", "b/m"):
        snap = registry.get(key).snapshot(s.clock.now)
        assert (snap["counts"], snap["last_error"], snap["consecutive_failures"]) == ({}, None, 0)
    assert s.metrics.outcomes == ["error"]


async def test_a_final_error_propagates_and_is_counted() -> None:
    policy = UpstreamStatus("no", status=400, kind="content_policy")
    s = Setup(Replies("a", policy), Replies("b", reply()))
    with pytest.raises(UpstreamStatus):
        await s.ask()
    assert s.b.calls == [] and s.metrics.outcomes == ["error"]
