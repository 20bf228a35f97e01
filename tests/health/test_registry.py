"""Target health: outcome window, holds, admission and the JSON snapshot."""

from __future__ import annotations

import json

from standby.health.registry import HealthRegistry, OutcomeWindow
from standby.plan.model import BreakerConfig

CFG = BreakerConfig(failures=2, ejection=1.0, growth=2.0, max_ejection=5.0, auth_ejection=100.0)
KEY = "openai/gpt-4o"


def test_window_counts_expire_with_time() -> None:
    window = OutcomeWindow(span=60.0, buckets=60)
    window.add("ok", 0.2)
    window.add("ok", 0.9)
    window.add("server_error", 30.0)
    assert window.counts(59.9) == {"ok": 2, "server_error": 1}
    assert window.counts(60.0) == {"server_error": 1}
    assert window.counts(89.9) == {"server_error": 1}
    assert window.counts(90.0) == {}


def test_window_reuses_a_slot_for_a_new_bucket() -> None:
    window = OutcomeWindow(span=10.0, buckets=10)
    window.add("timeout", 3.5)
    window.add("ok", 13.5)  # same slot, ten seconds later: the old count is gone
    assert window.counts(13.9) == {"ok": 1}


def test_hold_keeps_the_longest_and_ends_on_time() -> None:
    registry = HealthRegistry(CFG)
    registry.hold_until(KEY, 10.0)
    registry.hold_until(KEY, 5.0)  # a shorter hold never cuts a longer one
    assert registry.is_held(KEY, 9.9)
    assert not registry.available(KEY, 9.9)
    assert registry.get(KEY).admit(9.9) is None
    assert not registry.is_held(KEY, 10.0)
    assert registry.available(KEY, 10.0)


def test_rate_limited_holds_for_retry_after_and_counts() -> None:
    health = HealthRegistry(CFG).get(KEY)
    health.rate_limited(0.0, retry_after=2.5, admission=health.admit(0.0), error="429 slow down")
    assert health.is_held(2.4) and not health.is_held(2.5)
    assert health.window.counts(1.0) == {"rate_limited": 1}
    assert health.breaker.consecutive_failures == 1


def test_available_does_not_use_up_the_trial() -> None:
    registry = HealthRegistry(CFG)
    health = registry.get(KEY)
    health.failed("server_error", 0.0, error="500")
    health.failed("server_error", 0.0, error="500")
    assert not registry.available(KEY, 0.5)
    assert registry.available(KEY, 1.0) and registry.available(KEY, 1.0)
    trial = health.admit(1.0)
    assert trial is not None and trial.trial
    assert not registry.available(KEY, 1.0)
    health.rejected("context_length", 1.0, trial)  # no verdict: the slot is free again
    assert registry.available(KEY, 1.0)


def test_auth_alert_is_raised_once_and_cleared_by_success() -> None:
    health = HealthRegistry(CFG).get(KEY)
    assert health.auth_failed(0.0, health.admit(0.0), error="401 invalid key")
    assert not health.auth_failed(0.0, error="401 invalid key")
    assert health.auth_alert and health.breaker.state(99.0) == "open"
    trial = health.admit(100.0)
    health.succeeded(100.0, trial)
    assert not health.auth_alert and health.breaker.state(100.0) == "closed"


def test_snapshot_shape() -> None:
    registry = HealthRegistry(CFG)
    registry.get("anthropic/claude").succeeded(1.0)
    primary = registry.get(KEY)
    primary.failed("timeout", 2.0, error="first token deadline")
    primary.tripped("timeout", 2.0, error="x" * 1000)
    registry.hold_until(KEY, 4.0)
    snap = registry.snapshot(2.5)
    json.dumps(snap)
    assert snap["window"] == 60.0
    assert list(snap["targets"]) == ["anthropic/claude", KEY]
    assert snap["targets"][KEY] == {
        "state": "open",
        "open_for": 0.5,
        "opened_count": 1,
        "consecutive_failures": 2,
        "held_for": 1.5,
        "counts": {"timeout": 2},
        "last_error": "x" * 300,
        "last_success_ago": None,
        "auth_alert": False,
    }
    other = snap["targets"]["anthropic/claude"]
    assert other["state"] == "closed" and other["open_for"] == 0.0
    assert other["counts"] == {"ok": 1} and other["last_success_ago"] == 1.5


def test_get_returns_the_same_entry() -> None:
    registry = HealthRegistry(CFG)
    assert registry.get(KEY) is registry.get(KEY)
    assert registry.keys() == [KEY]
    assert repr(registry) == "<HealthRegistry targets=1>"
    assert repr(registry.get(KEY)).startswith(f"<TargetHealth {KEY} <Breaker closed")


def test_targets_made_by_clients_are_bounded_but_news_is_kept() -> None:
    """A ``{model}`` route makes a target per name a client sends: the registry stays
    bounded, and what it forgets never includes an open breaker, a hold or an alert."""
    registry = HealthRegistry(BreakerConfig(failures=1), max_targets=100)
    registry.get("sim/down").failed("error_5xx", 0.0)  # opens at once (failures=1)
    registry.hold_until("sim/held", 60.0)
    registry.get("sim/bad-key").auth_failed(0.0, None, "401")
    for n in range(5_000):
        registry.get(f"sim/noise-{n}").succeeded(1.0)
    kept = registry.keys()
    assert len(kept) <= 100
    assert {"sim/down", "sim/held", "sim/bad-key"} <= set(kept)
    assert registry.get("sim/down").breaker.state(0.5) == "open"
    assert "sim/noise-4999" in kept  # the newest are kept, the oldest at rest forgotten
