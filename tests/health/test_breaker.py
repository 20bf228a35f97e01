"""The circuit breaker, driven by tables of (time, event, expectation) and by hypothesis."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from standby.health.breaker import Admission, Breaker
from standby.plan.model import BreakerConfig

CFG = BreakerConfig(failures=3, ejection=1.0, growth=2.0, max_ejection=5.0, auth_ejection=100.0)

Report = Callable[[Breaker, float, Admission | None], None]
REPORTS: dict[str, Report] = {
    "ok": Breaker.record_success,
    "fail": Breaker.record_failure,
    "trip": Breaker.trip,
    "auth": Breaker.record_auth_failure,
}
OPEN = [(0.0, "fail", "closed"), (0.0, "fail", "closed"), (0.0, "fail", "open")]  # until 1.0

# Each step is (now, event, expected). Events:
#   "admit NAME"  → expected "pass", "trial" or None; the admission is kept under NAME
#   "ok|fail|trip|auth [NAME]" → report (with admission NAME, or none); expected state after
#   "release NAME" → expected state after
#   "allow" → expected bool;  "state" / "until" / "failures" → expected value
#   "probe NAME" → a probe's admission (``admit_probe``), as "admit"
# Other replicas' word (``cluster.health``):
#   "follow UNTIL[/PERIOD]" → expected state after; "lift" → expected state after
#   "peer N" / "peer-reset N" → N failures seen elsewhere (after a success there)
#   "following" → expected bool
CASES: dict[str, list[tuple[float, str, object]]] = {
    "opens after N consecutive failures": [
        (0.0, "fail", "closed"),
        (0.1, "fail", "closed"),
        (0.2, "fail", "open"),
        (0.2, "until", 1.2),
        (1.1, "allow", False),
        (1.2, "state", "half_open"),
    ],
    "a success resets the failure count": [
        (0, "fail", "closed"),
        (0, "fail", "closed"),
        (0, "ok", "closed"),
        (0, "fail", "closed"),
        (0, "fail", "closed"),
        (0, "failures", 2),
        (0, "fail", "open"),
    ],
    "ejection grows on repeated opens, capped at max_ejection": [
        *OPEN,
        (1, "admit t", "trial"),
        (1, "fail t", "open"),
        (1, "until", 3.0),
        (3, "admit t", "trial"),
        (3, "fail t", "open"),
        (3, "until", 7.0),
        (7, "admit t", "trial"),
        (7, "fail t", "open"),
        (7, "until", 12.0),
        (12, "admit t", "trial"),
        (12, "fail t", "open"),
        (12, "until", 17.0),
    ],
    "half-open grants exactly one trial": [
        *OPEN,
        (0.5, "admit x", None),
        (1, "admit a", "trial"),
        (1, "admit b", None),
        (20, "allow", False),
        (20, "state", "half_open"),
        (20, "ok a", "closed"),
        (20, "admit c", "pass"),
        (20, "failures", 0),
    ],
    "a lost trial is replaced after trial_timeout, and its late report ignored": [
        *OPEN,
        (1, "admit a", "trial"),
        (30.9, "allow", False),
        (31, "admit b", "trial"),
        (31.5, "fail a", "half_open"),
        (31.5, "ok a", "half_open"),
        (32, "ok b", "closed"),
    ],
    "failures admitted before an open do not extend it": [
        (0, "admit a", "pass"),
        (0, "admit b", "pass"),
        *OPEN,
        (0.5, "fail a", "open"),
        (0.5, "trip b", "open"),
        (0.5, "auth a", "open"),
        (0.5, "fail", "open"),
        (0.5, "trip", "open"),
        (0.5, "auth", "open"),
        (0.5, "until", 1.0),
        (0.5, "failures", 3),
        (1, "state", "half_open"),
    ],
    "failures admitted before a successful trial do not reopen it": [
        (0, "admit old", "pass"),
        (0, "admit old2", "pass"),
        *OPEN,
        (1, "admit t", "trial"),
        (1, "ok t", "closed"),
        (1, "fail old", "closed"),
        (1, "trip old2", "closed"),
        (1, "auth old", "closed"),
        (1, "failures", 0),
    ],
    "auth failure ejects at once, outside the growth chain": [
        (0, "admit a", "pass"),
        (0, "auth a", "open"),
        (0, "until", 100.0),
        (99.9, "allow", False),
        (100, "admit t", "trial"),
        (100, "fail t", "open"),
        (100, "until", 101.0),
    ],
    "auth failure of a half-open trial": [
        *OPEN,
        (1, "admit t", "trial"),
        (1, "auth t", "open"),
        (1, "until", 101.0),
    ],
    "growth is forgotten after a clean closed period": [
        *OPEN,
        (1, "admit t", "trial"),
        (1, "fail t", "open"),
        (3, "admit t", "trial"),
        (3, "ok t", "closed"),
        (8, "fail", "closed"),
        (8, "fail", "closed"),
        (8, "fail", "open"),
        (8, "until", 9.0),
    ],
    "a flapping target keeps its growth": [
        *OPEN,
        (1, "admit t", "trial"),
        (1, "fail t", "open"),
        (3, "admit t", "trial"),
        (3, "ok t", "closed"),
        (4, "fail", "closed"),
        (4, "fail", "closed"),
        (4, "fail", "open"),
        (4, "until", 8.0),
    ],
    "trip opens at once and grows": [
        (0, "trip", "open"),
        (0, "until", 1.0),
        (1, "admit t", "trial"),
        (1, "trip t", "open"),
        (1, "until", 3.0),
    ],
    "a released trial frees the slot at once": [
        *OPEN,
        (1, "admit a", "trial"),
        (1, "allow", False),
        (1, "release a", "half_open"),
        (1, "admit b", "trial"),
        (1, "ok a", "half_open"),
        (1, "ok b", "closed"),
    ],
    "release while closed changes nothing": [
        (0, "admit a", "pass"),
        (0, "release a", "closed"),
        (0, "fail a", "closed"),
        (0, "failures", 1),
    ],
    "failures seen elsewhere count, but only one seen here opens": [
        (0, "peer 2", "closed"),
        (0, "failures", 2),
        (0, "peer 5", "closed"),
        (0, "failures", 7),
        (0.5, "fail", "open"),
        (0.5, "until", 1.5),
        (0.5, "following", False),
    ],
    "a success elsewhere resets the count, then its failures count": [
        (0, "fail", "closed"),
        (0, "fail", "closed"),
        (0, "peer-reset 1", "closed"),
        (0, "failures", 1),
        (0, "fail", "closed"),
        (0, "fail", "open"),
    ],
    "failures seen elsewhere while open change nothing": [
        *OPEN,
        (0.5, "peer-reset 9", "open"),
        (0.5, "failures", 3),
        (1, "admit t", "trial"),
        (1, "ok t", "closed"),
        (1, "failures", 0),
    ],
    "a follower is open until the opener's end, with no trial before it": [
        (0, "admit old", "pass"),
        (0, "follow 2.5/1", "open"),
        (0, "following", True),
        (0, "until", 2.5),
        (0.5, "fail old", "open"),  # admitted before: moot, opens nothing of its own
        (0.5, "following", True),
        (2.4, "admit x", None),
        (2.5, "admit t", "trial"),  # nothing more was heard: it tries itself
        (2.5, "fail t", "open"),
        (2.5, "until", 4.5),  # grown from the opener's period
        (2.5, "following", False),
    ],
    "a follower follows the opener's next end, and its closing": [
        (0, "follow 1.5", "open"),
        (1, "follow 3", "open"),
        (1, "until", 3.0),
        (1, "follow 2", "open"),  # an older word: the later end stands
        (1, "until", 3.0),
        (2, "lift", "closed"),
        (2, "following", False),
        (2, "admit a", "pass"),
    ],
    "an opening of its own that ends later is kept": [
        *OPEN,
        (0.1, "follow 0.9", "open"),
        (0.1, "until", 1.0),
        (0.1, "following", False),
        (0.2, "follow 1.4", "open"),  # a later one is followed
        (0.2, "following", True),
        (0.2, "until", 1.4),
    ],
    "a lifted trial's late report is moot": [
        *OPEN,
        (1, "admit t", "trial"),
        (1.1, "lift", "closed"),
        (1.2, "fail t", "closed"),
        (1.2, "failures", 0),
    ],
    "a probe's trial while following, failed: its own opening": [
        (0, "follow 5", "open"),
        (1, "probe p", "trial"),
        (1.1, "fail p", "open"),
        (1.1, "following", False),
        (1.1, "until", 2.1),
    ],
    "a word that is over, or a lift of a closed breaker, changes nothing": [
        (3, "follow 2", "closed"),
        (3, "lift", "closed"),
        (3, "following", False),
    ],
    "convenience reports go to the outstanding trial": [
        *OPEN,
        (1, "allow", True),
        (1, "fail", "open"),
        (1, "until", 3.0),
        (3, "allow", True),
        (3, "ok", "closed"),
    ],
}


def run(steps: list[tuple[float, str, object]], config: BreakerConfig = CFG) -> Breaker:
    breaker = Breaker(config)
    kept: dict[str, Admission] = {}
    for i, (now, event, expected) in enumerate(steps):
        verb, _, name = event.partition(" ")
        got: object
        if verb in ("admit", "probe"):
            admission = breaker.admit(now) if verb == "admit" else breaker.admit_probe(now)
            if admission is not None:
                kept[name] = admission
            got = None if admission is None else "trial" if admission.trial else "pass"
        elif verb in REPORTS:
            REPORTS[verb](breaker, now, kept[name] if name else None)
            got = breaker.state(now)
        elif verb == "release":
            breaker.release(kept[name])
            got = breaker.state(now)
        elif verb == "follow":
            until, _, period = name.partition("/")
            breaker.follow(now, float(until), float(period) if period else None)
            got = breaker.state(now)
        elif verb == "lift":
            breaker.lift(now)
            got = breaker.state(now)
        elif verb in ("peer", "peer-reset"):
            breaker.add_peer_failures(int(name), reset=verb == "peer-reset")
            got = breaker.state(now)
        elif verb == "following":
            got = breaker.following
        elif verb == "allow":
            got = breaker.allow(now)
        elif verb == "state":
            got = breaker.state(now)
        elif verb == "until":
            got = breaker.open_until
        else:
            assert verb == "failures"
            got = breaker.consecutive_failures
        assert got == expected, f"step {i} {(now, event)}: got {got!r}; {breaker!r}"
    return breaker


@pytest.mark.parametrize("steps", list(CASES.values()), ids=list(CASES))
def test_breaker(steps: list[tuple[float, str, object]]) -> None:
    run(steps)


def test_first_ejection_is_capped_by_max_ejection() -> None:
    config = BreakerConfig(failures=1, ejection=10.0, max_ejection=2.0)
    run([(0, "fail", "open"), (0, "until", 2.0)], config)


def test_repr() -> None:
    breaker = run([(0, "fail", "closed"), (0, "fail", "closed")])
    assert repr(breaker) == "<Breaker closed ejections=0 failures=2 epoch=0>"
    breaker = run([*OPEN, (1, "admit t", "trial"), (1, "fail t", "open"), (3, "allow", True)])
    assert repr(breaker) == "<Breaker open until=3.00 trial_at=3.00 ejections=2 failures=4 epoch=4>"
    breaker = run([(0, "follow 2", "open")])
    assert repr(breaker) == "<Breaker open until=2.00 following ejections=1 failures=0 epoch=1>"


configs = st.builds(
    BreakerConfig,
    failures=st.integers(1, 5),
    ejection=st.floats(0.01, 10),
    growth=st.floats(1, 3),
    max_ejection=st.floats(0.01, 60),
    auth_ejection=st.floats(0.01, 300),
)
verbs = st.sampled_from(
    [
        *("admit", "admit", "ok", "fail", "trip", "auth", "release"),
        *("ok_none", "fail_none", "trip_none", "peer", "peer_reset"),
    ]
)
events = st.lists(st.tuples(st.floats(0, 40), verbs, st.integers(0, 10_000)), max_size=80)


@settings(max_examples=300, deadline=None)
@given(config=configs, trial_timeout=st.floats(0.1, 60), steps=events)
def test_properties(
    config: BreakerConfig, trial_timeout: float, steps: list[tuple[float, str, int]]
) -> None:
    breaker = Breaker(config, trial_timeout=trial_timeout)
    bound = max(config.max_ejection, config.auth_ejection)
    out: list[tuple[Admission, float]] = []  # granted and not yet reported, with grant time
    now = 0.0
    for dt, verb, pick in steps:
        now += dt
        live = [a for a, at in out if a.trial and breaker.current(a) and now < at + trial_timeout]
        assert len(live) <= 1, "more than one outstanding trial"
        if verb == "admit":
            state = breaker.state(now)
            admission = breaker.admit(now)
            if state == "closed":
                assert admission is not None and not admission.trial
            if state == "open":
                assert admission is None
            if admission is not None:
                assert not (admission.trial and live), "a second trial was granted"
                out.append((admission, now))
        elif verb.startswith("peer"):
            state, until = breaker.state(now), breaker.open_until
            breaker.add_peer_failures(pick % 7, reset=verb == "peer_reset")
            assert (breaker.state(now), breaker.open_until) == (state, until), "a peer moved it"
        elif verb.endswith("_none"):
            REPORTS[verb.removesuffix("_none")](breaker, now, None)
        elif out:
            admission, _ = out.pop(pick % len(out))
            before = (breaker.open_until, breaker.opened_count, breaker.consecutive_failures)
            stale = not breaker.current(admission)
            if verb == "release":
                breaker.release(admission)
            else:
                REPORTS[verb](breaker, now, admission)
            if stale:
                after = (breaker.open_until, breaker.opened_count, breaker.consecutive_failures)
                assert after == before, "a stale report moved the breaker"
        until = breaker.open_until
        assert until is None or until <= now + bound + 1e-9


def test_a_probe_takes_a_trial_out_of_turn_while_the_ejection_runs() -> None:
    breaker = Breaker(BreakerConfig(failures=1, ejection=10.0, max_ejection=10.0))
    breaker.record_failure(0.0)
    assert breaker.state(1.0) == "open" and breaker.admit(1.0) is None
    probe = breaker.admit_probe(1.0)
    assert probe is not None and probe.trial
    assert breaker.admit_probe(1.1) is None  # one trial at a time
    breaker.record_failure(1.2, probe)  # still down: open again, from now
    assert breaker.open_until == 11.2
    probe = breaker.admit_probe(2.0)
    assert probe is not None
    breaker.record_success(2.1, probe)
    assert breaker.state(2.1) == "closed"
