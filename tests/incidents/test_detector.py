"""The incident detector: judgements from signals, and hysteresis over them.

Scenarios run on an injected clock: one evaluation a second, outcomes fed to real
``Signals`` as a live request (or a probe) would."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from standby.incidents.detector import (
    Change,
    Detector,
    Judgement,
    Severity,
    Verdict,
    judge,
    judge_route,
)
from standby.plan.alerts import Detect
from standby.watch.signals import Signals

CONFIG = Detect()  # fast 5 s at 50 %; slow 120 s (60 events) at 10 %; open after 5, resolve after 5
KEY = "primary/m"

# second → list of (ok, probe) outcomes in that second
Traffic = Callable[[int], list[tuple[bool, bool]]]


def steady(ok: Callable[[int], bool], per_second: int = 2) -> Traffic:
    return lambda second: [(ok(second), False)] * per_second


def run(traffic: Traffic, seconds: int) -> list[tuple[int, Change]]:
    signals, detector = Signals(slow=CONFIG.slow_window), Detector(CONFIG)
    changes: list[tuple[int, Change]] = []
    for second in range(seconds):
        for n, (ok, probe) in enumerate(traffic(second)):
            outcome = "ok" if ok else "server_error"
            signals.attempt(KEY, outcome, ok, 0.1, second + n / 100, probe=probe)
        now = second + 0.99
        verdict = judge(
            signals.stats(KEY, CONFIG.fast_window, now),
            signals.stats(KEY, CONFIG.slow_window, now),
            signals.probe_failures(KEY),
            CONFIG,
        )
        transition = detector.observe(KEY, verdict, now)
        if transition is not None:
            changes.append((second, transition.change))
    return changes


def one_percent_errors(second: int) -> bool:
    return second % 50 != 7  # one failure in 100 requests at 2 a second


def probe_only(down: Callable[[int], bool], every: int = 5) -> Traffic:
    """No live traffic; a probe every ``every`` s, another 2 s after a failed one."""

    def traffic(second: int) -> list[tuple[bool, bool]]:
        due = second % every == 0 or (down(second - 2) and (second - 2) % every == 0)
        return [(not down(second), True)] if due else []

    return traffic


@pytest.mark.parametrize(
    ("name", "traffic", "seconds", "expected"),
    [
        ("healthy", steady(lambda s: True), 300, []),
        ("1 % random errors", steady(one_percent_errors), 600, []),
        ("a 3 s blip", steady(lambda s: not 100 <= s < 103), 300, []),
        ("a 3 s blip 20 s after the traffic starts", steady(lambda s: not 20 <= s < 23), 300, []),
        (
            "an outage of 30 s, then recovery",
            steady(lambda s: not 20 <= s < 50),
            120,
            [(26, Change.OPENED), (54, Change.MONITORING), (58, Change.RESOLVED)],
        ),
        (
            "flapping: failing every other 4 s is one incident, open until it stops",
            steady(lambda s: not (20 <= s < 60 and (s // 4) % 2 == 0)),
            140,
            [(30, Change.OPENED), (64, Change.MONITORING), (68, Change.RESOLVED)],
        ),
        (
            "a slow burn: 20 % of requests fail",
            steady(lambda s: s < 30 or s % 5 != 0),
            120,
            [(59, Change.OPENED)],
        ),
        ("no traffic at all: nothing to judge", lambda s: [], 60, []),
        (
            "probes alone: a failed probe confirmed 2 s later opens it",
            probe_only(lambda s: s >= 20),
            60,
            [(26, Change.OPENED)],
        ),
    ],
)
def test_scenarios(
    name: str, traffic: Traffic, seconds: int, expected: list[tuple[int, Change]]
) -> None:
    assert run(traffic, seconds) == expected


def test_unknown_judgements_keep_an_incident_open() -> None:
    detector = Detector(Detect(open_after=1, resolve_after=2))
    bad, unknown, ok = (
        Verdict(Judgement.BAD, Severity.MAJOR, "x"),
        Verdict(Judgement.UNKNOWN),
        Verdict(Judgement.OK),
    )
    assert detector.observe("c", bad, 0.0) is not None
    assert all(detector.observe("c", unknown, float(t)) is None for t in range(1, 100))
    assert detector.is_open("c") and detector.first_bad_at("c") == 0.0
    assert detector.observe("c", ok, 100.0).change is Change.MONITORING  # type: ignore[union-attr]
    assert detector.observe("c", unknown, 101.0) is None  # does not break the good streak
    assert detector.observe("c", ok, 102.0).change is Change.RESOLVED  # type: ignore[union-attr]
    assert not detector.is_open("c")


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        ([Judgement.BAD, Judgement.BAD], Judgement.BAD),
        ([Judgement.BAD, Judgement.OK], Judgement.OK),
        ([Judgement.BAD, Judgement.UNKNOWN], Judgement.UNKNOWN),
        ([], Judgement.UNKNOWN),
    ],
)
def test_a_route_fails_when_all_its_targets_do(
    targets: list[Judgement], expected: Judgement
) -> None:
    assert judge_route([Verdict(j) for j in targets]).judgement is expected


def test_slow_latency_is_a_minor_incident() -> None:
    config = Detect(latency_p99=1.0, open_after=1)
    signals = Signals()
    for n in range(10):
        signals.attempt(KEY, "ok", True, 2.5, 1.0 + n / 10)
    verdict = judge(signals.stats(KEY, 10.0, 2.0), signals.stats(KEY, 120.0, 2.0), 0, config)
    assert verdict.judgement is Judgement.BAD and verdict.severity is Severity.MINOR
    assert "p99 latency 2500 ms" in verdict.reason
