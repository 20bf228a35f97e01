"""A replica applying the others' messages, without Redis (``SharedHealth.apply`` with
clocks of the test's own): it follows their openings and closings, counts their
failures, adds their seconds to its signals, and says only its own openings."""

from __future__ import annotations

from typing import Any

import pytest

from standby.cluster.health import GRACE, SharedHealth
from standby.cluster.summaries import encode
from standby.errors import UpstreamKind, UpstreamStatus
from standby.health.gate import RegistryGate
from standby.health.registry import HealthRegistry
from standby.metrics import Metrics
from standby.plan.model import BreakerConfig
from standby.routing.outcomes import judge
from standby.watch.signals import Bucket, Signals

K = "primary/m"
EPOCH = 1_700_000_000.0  # the wall clock when the monotonic one reads 0
DOWN = UpstreamStatus("down", status=503, kind=UpstreamKind.UNAVAILABLE)


class Clocks:
    def __init__(self) -> None:
        self.now = 10.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return EPOCH + self.now


def replica() -> tuple[SharedHealth, RegistryGate, Clocks]:
    clocks = Clocks()
    registry = HealthRegistry(BreakerConfig(failures=3, ejection=1.0, max_ejection=4.0))
    signals = Signals()
    shared = SharedHealth(
        "redis://unused",
        prefix="t",
        gate=lambda: gate,
        replica="me",
        signals=signals,
        clock=clocks.monotonic,
        wall=clocks.wall,
    )
    gate = RegistryGate(registry, Metrics(), observer=shared.relay, on_transition=shared.transition)
    return shared, gate, clocks


def opening(until: float, replica: str = "r1", period: float = 1.0) -> dict[str, Any]:
    return {"replica": replica, "target": K, "state": "open", "until": EPOCH + until,
            "period": period, "at": EPOCH}  # fmt: skip


def fail_here(gate: RegistryGate, now: float) -> None:
    token = gate.admit(K, now)
    assert token is not None, "the target should be admitted here"
    gate.failed(K, token, now, judge(DOWN, same_target_tries=0, max_same_target=1), DOWN, 0.1)


def test_a_peers_opening_is_followed_to_its_end_and_its_closing_lifts_it() -> None:
    shared, gate, clocks = replica()
    breaker = gate.registry.get(K).breaker
    assert shared.apply(opening(11.0))
    assert breaker.following and breaker.open_until == pytest.approx(11.0 + GRACE)
    assert shared.status()["held"] == [K] and shared.status()["open"] == []
    assert shared.apply(opening(13.0))  # its trial failed: open again, a later end
    assert breaker.open_until == pytest.approx(13.0 + GRACE)
    assert not shared.apply(opening(12.0, replica="r2"))  # an older word: nothing changes
    clocks.now = 12.0
    assert shared.apply({"replica": "r1", "target": K, "state": "closed", "at": EPOCH + 12})
    assert breaker.state(12.0) == "closed" and shared.status()["held"] == []
    assert shared.applied == 2 and set(shared.peers) == {"r1", "r2"}
    assert shared.status()["open"] == [], "nothing of its own to say"


def test_its_own_opening_is_said_until_a_later_one_of_a_peer_is_followed() -> None:
    shared, gate, clocks = replica()
    for _ in range(3):
        fail_here(gate, clocks.now)
    assert shared.status()["open"] == [K]
    assert not shared.apply(opening(10.5))  # ends before ours (11.0): ours stands
    assert shared.apply(opening(14.0, replica="r2"))
    assert gate.registry.get(K).breaker.following and shared.status()["open"] == []


def test_failures_elsewhere_count_and_the_next_one_here_opens() -> None:
    shared, gate, clocks = replica()
    told = {"replica": "r1", "kind": "failures", "at": EPOCH, "targets": {K: [False, 2]}}
    assert shared.apply(told) and shared.heard == 1
    breaker = gate.registry.get(K).breaker
    assert breaker.consecutive_failures == 2 and breaker.state(clocks.now) == "closed"
    fail_here(gate, clocks.now)
    assert breaker.state(clocks.now) == "open" and shared.status()["open"] == [K]
    reset = {"replica": "r1", "kind": "failures", "at": EPOCH, "targets": {"other/m": [True, 1]}}
    shared.apply(reset)
    assert gate.registry.get("other/m").breaker.consecutive_failures == 1


def test_a_peers_second_is_added_to_the_signals() -> None:
    shared, _, clocks = replica()
    second = Bucket(0)
    for n in range(4):
        second.outcome(n == 0, "ok" if n == 0 else "server_error", 0.2, EPOCH + 9.2, False, 8)
    message = {"replica": "r1", "kind": "signals", "at": EPOCH + 10, "second": int(EPOCH + 9),
               "targets": {K: encode(second)}}  # fmt: skip
    assert shared.apply(message) and shared.merged == 1
    assert shared.signals is not None
    stats = shared.signals.stats(K, 5.0, clocks.now)
    assert (stats.events, stats.failures) == (4, 3)
    assert stats.last_failure == pytest.approx(9.2)  # on this replica's clock


@pytest.mark.parametrize(
    "message",
    [
        {"replica": "r1", "kind": "failures", "at": EPOCH, "targets": {K: [False]}},
        {"replica": "r1", "kind": "failures", "at": EPOCH, "targets": [K]},
        {"replica": "r1", "kind": "signals", "at": EPOCH, "second": "x", "targets": {}},
        {"replica": "r1", "target": K, "state": "open", "at": EPOCH},
        {"replica": "r1", "target": K, "state": "open", "until": "later", "at": EPOCH},
    ],
)
def test_a_malformed_message_raises_and_moves_nothing(message: dict[str, Any]) -> None:
    shared, gate, _ = replica()
    with pytest.raises((ValueError, TypeError, KeyError, AttributeError)):
        shared.apply(message)
    assert gate.registry.get(K).at_rest


def test_its_own_messages_are_ignored() -> None:
    shared, gate, _ = replica()
    assert not shared.apply(opening(20.0, replica="me"))
    assert gate.registry.get(K).breaker.state(10.0) == "closed" and shared.peers == {}
