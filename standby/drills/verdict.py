"""A drill's verdict: its report's figures against the plan's objectives (pure).

Each objective the plan sets is one check; the drill passes when every check does.  A
figure the journal does not have fails its check with the reason (no fallback answered,
no notification delivered): a rehearsal that could not show it did not show it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from standby.plan.alerts import Objectives
from standby.reports.model import Report


@dataclass(frozen=True, slots=True)
class Check:
    objective: str  # the plan's key, e.g. "max_time_to_failover"
    limit: float
    value: float | None  # what the drill showed (seconds, or requests)
    passed: bool
    why: str  # one sentence


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    checks: list[Check]

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks]}


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def judge(report: Report, objectives: Objectives) -> Verdict:
    checks: list[Check] = []
    impact, timings = report.impact, report.timings
    if objectives.max_failed_requests is not None:
        limit = objectives.max_failed_requests
        failed = impact.failed
        checks.append(
            Check(
                "max_failed_requests",
                limit,
                failed,
                failed <= limit,
                f"{failed} requests failed (at most {limit})",
            )
        )
    timed = (
        ("max_time_to_failover", objectives.max_time_to_failover, timings.to_failover,
         "a fallback answered", "no request was answered by a fallback"),
        ("max_time_to_notify", objectives.max_time_to_notify, timings.to_notify,
         "the first notification was delivered", "no notification was delivered"),
    )  # fmt: skip
    for name, limit_s, value, what, missing in timed:
        if limit_s is None:
            continue
        if value is None:
            checks.append(Check(name, limit_s, None, False, missing))
            continue
        checks.append(
            Check(
                name,
                limit_s,
                value,
                value <= limit_s,
                f"{what} {_seconds(value)} after the first failure (at most {_seconds(limit_s)})",
            )
        )
    if objectives.max_added_p99 is not None:
        limit_s = objectives.max_added_p99
        added = impact.added.p99_ms
        if added is None:
            checks.append(
                Check(
                    "max_added_p99",
                    limit_s,
                    None,
                    False,
                    "no latency to compare: no answered request before or during the drill",
                )
            )
        else:
            value = added / 1000.0
            checks.append(
                Check(
                    "max_added_p99",
                    limit_s,
                    value,
                    value <= limit_s,
                    f"p99 latency rose by {added:,.0f} ms over the span before the drill "
                    f"(at most {_seconds(limit_s)})",
                )
            )
    return Verdict(all(c.passed for c in checks), checks)
