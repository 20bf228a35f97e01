"""A drill's verdict: each objective the plan sets is one check, a figure the drill
could not show fails with its reason (table-driven over the objectives)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from standby.drills.verdict import judge
from standby.plan.alerts import Objectives
from standby.reports.model import Impact, Latency, Report, Timings
from tests.reports import sample


def report(failed: int = 0, failover: float | None = 1.2, notify: float | None = 8.0,
           p99: float | None = 900.0, before: float | None = 700.0) -> Report:  # fmt: skip
    base = sample.outage()
    impact: Impact = replace(
        base.impact, failed=failed, latency=Latency(300.0, p99), baseline=Latency(250.0, before)
    )
    timings: Timings = replace(base.timings, to_failover=failover, to_notify=notify)
    return replace(base, impact=impact, timings=timings)


@pytest.mark.parametrize(
    ("objectives", "figures", "passed", "why"),
    [
        (Objectives(max_failed_requests=0), {}, True, "0 requests failed (at most 0)"),
        (Objectives(max_failed_requests=0), {"failed": 2}, False, "2 requests failed"),
        (Objectives(max_time_to_failover=5.0), {}, True, "a fallback answered 1.2 s after"),
        (Objectives(max_time_to_failover=0.5), {}, False, "(at most 500 ms)"),
        (
            Objectives(max_time_to_failover=5.0),
            {"failover": None},
            False,
            "no request was answered by a fallback",
        ),
        (Objectives(max_time_to_notify=30.0), {"notify": None}, False, "no notification"),
        (Objectives(max_added_p99=0.5), {}, True, "p99 latency rose by 200 ms"),
        (Objectives(max_added_p99=0.1), {}, False, "(at most 100 ms)"),
        (Objectives(max_added_p99=0.5), {"before": None}, False, "no latency to compare"),
    ],
)
def test_each_objective_is_one_check(
    objectives: Objectives, figures: dict[str, float | None], passed: bool, why: str
) -> None:
    verdict = judge(report(**figures), objectives)  # type: ignore[arg-type]
    [check] = verdict.checks
    assert (verdict.passed, check.passed) == (passed, passed)
    assert why in check.why, check.why


def test_no_objective_judges_nothing_and_passes() -> None:
    verdict = judge(report(failed=99), Objectives())
    assert verdict.passed and verdict.checks == []
    assert verdict.as_dict() == {"passed": True, "checks": []}
