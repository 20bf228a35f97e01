"""Probes against a real simulated provider on loopback, with an injected clock for what
is due (the probes themselves are real HTTP calls)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from standby.health.gate import RegistryGate
from standby.health.registry import HealthRegistry
from standby.metrics import Metrics
from standby.plan.alerts import Probes
from standby.plan.model import BreakerConfig, ProviderConfig
from standby.providers.openai import OpenAIProvider
from standby.sim import Fault, SimProvider
from standby.watch.probes import CONFIRM, OPEN_EVERY, PATIENCE, Prober, probe_targets
from standby.watch.signals import Signals

KEY = "primary/gpt-4o-mini"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def sim() -> AsyncIterator[SimProvider]:
    async with SimProvider("primary", words=3) as running:
        yield running


async def rig(sim: SimProvider, **probes: object) -> tuple[Prober, Clock, Signals, RegistryGate]:
    clock = Clock()
    signals = Signals()
    registry = HealthRegistry(BreakerConfig(failures=2, ejection=5.0))
    gate = RegistryGate(registry, Metrics(), observer=signals)
    provider = OpenAIProvider("primary", ProviderConfig(base_url=sim.base_url))
    prober = Prober(
        Probes.model_validate({"interval": 10.0, **probes}),
        {KEY: ("primary", "gpt-4o-mini")},
        {"primary": provider},
        gate,
        signals,
        clock=clock,
    )
    return prober, clock, signals, gate


async def test_a_probe_is_a_tiny_real_request_whose_outcome_feeds_the_signals(
    sim: SimProvider,
) -> None:
    prober, clock, signals, _ = await rig(sim)
    assert await prober.probe(KEY)
    [request] = sim.requests
    assert request.body["max_tokens"] == 1 and request.body["model"] == "gpt-4o-mini"
    stats = signals.stats(KEY, 10.0, clock.now)
    assert (stats.events, stats.probes, stats.failures) == (1, 1, 0)
    assert signals.live_events(KEY, 10.0, clock.now) == 0


async def test_a_failed_probe_is_confirmed_soon_and_a_healthy_one_waits_an_interval(
    sim: SimProvider,
) -> None:
    prober, clock, signals, _ = await rig(sim)
    sim.set_fault(Fault("error", status=500))
    assert not await prober.probe(KEY)
    assert prober.due(clock.now) == []
    clock.now += CONFIRM
    assert prober.due(clock.now) == [KEY]
    assert not await prober.probe(KEY)
    assert signals.probe_failures(KEY) == 2
    sim.clear()


async def test_live_traffic_makes_probes_unnecessary(sim: SimProvider) -> None:
    prober, clock, signals, _ = await rig(sim, busy=3)
    clock.now += 20.0
    for n in range(3):
        signals.attempt(KEY, "ok", True, 0.1, clock.now - n)
    assert prober.due(clock.now) == []
    clock.now += 25.0  # the traffic stopped: probing again
    assert prober.due(clock.now) == [KEY]


async def test_an_unexpected_answer_is_a_failed_probe(sim: SimProvider) -> None:
    prober, clock, signals, _ = await rig(sim, expect="^never$")
    assert not await prober.probe(KEY)
    assert signals.stats(KEY, 10.0, clock.now).failures == 1


async def test_a_probe_is_the_trial_that_closes_an_open_breaker(sim: SimProvider) -> None:
    prober, clock, _, gate = await rig(sim)
    sim.set_fault(Fault("error", status=500))
    assert not await prober.probe(KEY)
    clock.now += CONFIRM
    assert not await prober.probe(KEY)
    breaker = gate.registry.get(KEY).breaker
    assert breaker.state(clock.now) == "open"
    assert prober.due(clock.now) == []  # just probed
    clock.now += OPEN_EVERY
    assert prober.due(clock.now) == [KEY]  # while the ejection runs, every OPEN_EVERY
    assert not await prober.probe(KEY)  # still down: open again
    sim.clear()
    clock.now += OPEN_EVERY  # well before the 5 s ejection ends
    assert prober.due(clock.now) == [KEY]
    assert await prober.probe(KEY)
    assert breaker.state(clock.now) == "closed"


def test_targets_come_from_the_routes_of_probed_providers() -> None:
    routes = {"chat": ["a/m1", "b/m2"], "other": ["a/m1", "c/m3"]}
    found = probe_targets(routes, {"a": 1, "b": 2, "c": 3}, lambda name: name != "c")
    assert found == {"a/m1": ("a", "m1"), "b/m2": ("b", "m2")}


async def test_a_probe_stuck_on_a_slow_provider_makes_way_for_the_next(
    sim: SimProvider,
) -> None:
    prober, clock, _, gate = await rig(sim)
    sim.set_fault(Fault("error", status=500))
    assert not await prober.probe(KEY)
    clock.now += CONFIRM
    assert not await prober.probe(KEY)  # open now
    sim.set_fault(Fault("silent"))
    clock.now += OPEN_EVERY
    stuck = asyncio.create_task(prober.probe(KEY))
    await asyncio.sleep(0)  # it has taken the breaker's trial and waits on the provider
    clock.now += OPEN_EVERY
    assert prober.due(clock.now) == []  # still patient
    sim.clear()
    clock.now += PATIENCE
    assert prober.due(clock.now) == [KEY]
    assert await prober.probe(KEY)  # a new trial, past the stuck one
    assert gate.registry.get(KEY).breaker.state(clock.now) == "closed"
    stuck.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stuck


async def test_a_long_outage_is_probed_less_and_less_often(sim: SimProvider) -> None:
    prober, clock, _, gate = await rig(sim)
    sim.set_fault(Fault("error", status=500))
    assert not await prober.probe(KEY)
    clock.now += CONFIRM
    assert not await prober.probe(KEY)  # the breaker is open from here on
    assert gate.registry.get(KEY).breaker.state(clock.now) == "open"
    prober.due(clock.now)  # the outage is seen to begin now

    def probed_within(seconds: float, step: float = 0.05) -> int:
        count = 0
        end = clock.now + seconds
        while clock.now < end:
            clock.now += step
            if prober.due(clock.now):
                prober._schedule[KEY].last_at = clock.now  # as probe() would
                count += 1
        return count

    assert probed_within(10.0) >= 30  # the first 30 s: about four a second
    clock.now += 25.0
    assert 8 <= probed_within(10.0) <= 11  # then one a second
    clock.now += 300.0
    assert 1 <= probed_within(10.0) <= 3  # after 5 minutes: one every 5 s
    sim.clear()
