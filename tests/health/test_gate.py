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


def breaker_states(metrics: Metrics) -> dict[str, float]:
    """``standby_breaker_state`` by target."""
    return {
        sample.labels["target"]: sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "standby_breaker_state"
    }


def test_openings_again_are_told_and_another_replicas_word_is_shown_not_told() -> None:
    registry = HealthRegistry(BreakerConfig(failures=1, ejection=1.0, max_ejection=4.0))
    metrics = Metrics()
    told: list[tuple[str, str, float | None]] = []
    g = RegistryGate(registry, metrics, on_transition=lambda *t: told.append(t))
    down = UpstreamStatus("down", status=503, kind="unavailable")
    verdict = judge(down, same_target_tries=0, max_same_target=1)
    g.succeeded(KEY, g.admit(KEY, 0.0), 0.0, 0.1)
    assert told == [], "closed, as an unknown breaker is presumed to be: no news"
    g.failed(KEY, g.admit(KEY, 0.0), 0.0, verdict, down, 0.1)
    assert told == [(KEY, "open", 1.0)]
    probe = g.admit_probe(KEY, 0.5)  # a failed trial opens it again, with a new end
    g.failed(KEY, probe, 0.5, verdict, down, 0.1)
    assert told[-1] == (KEY, "open", 0.5 + 1.5)  # grown
    g.succeeded(KEY, g.admit_probe(KEY, 0.7), 0.7, 0.1)
    assert told[-1] == (KEY, "closed", None)
    told.clear()
    other = "openai/gpt"
    before = g.admit(other, 0.9)
    assert g.follow(other, 1.0, 3.0, 1.0)  # another replica opened it: shown, not told
    assert registry.get(other).breaker.following and told == []
    assert breaker_states(metrics)[other] == 2.0  # open
    assert not g.follow(other, 1.0, 2.0)  # an older word changes nothing
    g.failed(other, before, 1.5, verdict, down, 0.6)
    assert told == [], "an attempt admitted before makes the follower no opener"
    assert g.lift(other, 2.0) and not g.lift(other, 2.0)
    assert told == [] and breaker_states(metrics)[other] == 0.0
    g.add_peer_failures(other, 1)
    g.failed(other, g.admit(other, 2.5), 2.5, verdict, down, 0.1)
    assert told == [(other, "open", 2.5 + 1.5)]  # grown from the period it followed
