"""The health gate: each verdict reaches the target's record as its effect says, and two
verdicts that are not about the target's health stay out of it."""

from __future__ import annotations

from standby.errors import LocalLimit, UpstreamStatus
from standby.health.gate import OpenGate, RegistryGate
from standby.health.registry import HealthRegistry
from standby.metrics import Metrics
from standby.plan.model import BreakerConfig
from standby.routing.outcomes import judge

CFG = BreakerConfig(failures=1, ejection=10.0, max_ejection=10.0)
KEY = "anthropic/claude"
ATTEMPTS = "standby_attempts_total"


def gate() -> tuple[RegistryGate, HealthRegistry, Metrics]:
    registry = HealthRegistry(CFG)
    metrics = Metrics()
    return RegistryGate(registry, metrics), registry, metrics


def attempts(metrics: Metrics) -> dict[str, float]:
    """``standby_attempts_total`` by outcome."""
    return {
        sample.labels["outcome"]: sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == ATTEMPTS
    }


def test_a_local_limit_records_nothing_against_the_target() -> None:
    g, registry, metrics = gate()
    before = registry.get(KEY).snapshot(1.0)
    error = LocalLimit("anthropic: no connection slot within 2s")
    for now in (1.0, 1.1, 1.2):  # enough to open a breaker of one failure, many times
        token = g.admit(KEY, now)
        assert token is not None
        verdict = judge(error, same_target_tries=0, max_same_target=1)
        g.failed(KEY, token, now, verdict, error, 2.0)
    assert registry.get(KEY).snapshot(1.0) == before  # no count, no error, breaker closed
    assert g.silence(1.3)[KEY] == {"waiting": 0, "silent": False}, "no ticket left waiting"
    assert attempts(metrics) == {"local_limit": 3.0}, "the metric names Standby's limit"


def test_a_local_limit_frees_a_half_open_trial() -> None:
    g, registry, _ = gate()
    down = UpstreamStatus("down", status=503, kind="unavailable")
    token = g.admit(KEY, 0.0)
    g.failed(KEY, token, 0.0, judge(down, same_target_tries=0, max_same_target=1), down, 0.1)
    trial = g.admit(KEY, 10.0)  # the ejection is over: the one trial
    assert trial is not None and g.admit(KEY, 10.0) is None
    limit = LocalLimit("no fd")
    g.failed(KEY, trial, 10.0, judge(limit, same_target_tries=0, max_same_target=1), limit, 0.0)
    assert registry.get(KEY).breaker.state(10.0) == "half_open", "not reopened"
    assert g.admit(KEY, 10.0) is not None, "the trial slot is free again at once"


def test_a_prefill_refusal_is_remembered_and_moves_no_breaker() -> None:
    g, registry, metrics = gate()
    refusal = UpstreamStatus("prefill is not supported", status=400, kind="invalid_request")
    verdict = judge(refusal, same_target_tries=0, max_same_target=1, prefill=True)
    assert not g.refuses_prefill(KEY)
    token = g.admit(KEY, 1.0)
    g.failed(KEY, token, 1.0, verdict, refusal, 0.2)
    assert g.refuses_prefill(KEY)
    health = registry.get(KEY)
    assert health.no_prefill and health.breaker.state(1.0) == "closed"
    assert health.snapshot(1.0)["counts"] == {"prefill_rejected": 1}
    assert attempts(metrics) == {"prefill_rejected": 1.0}
    assert "no_prefill" in repr(health)
    assert not registry.refuses_prefill("anthropic/other"), "per target"
    assert "anthropic/other" not in registry.keys(), "asking creates no record"


def test_the_open_gate_knows_no_refusal() -> None:
    assert not OpenGate().refuses_prefill(KEY)
