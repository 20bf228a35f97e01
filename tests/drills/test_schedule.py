"""Scheduled drills start when their cron time comes (UTC), once, and not while one
already runs on the target; a drill kept in the journal reads back as its report."""

from __future__ import annotations

from datetime import UTC, datetime

from standby.drills.runner import Context, DrillRunner
from standby.plan.load import parse_plan
from standby.reports.model import report_from_dict
from tests.reports import sample

PLAN = """\
providers:
  openai: {kind: openai, base_url: "https://api.openai.com/v1", api_key: k}
  anthropic: {kind: anthropic, base_url: "https://api.anthropic.com", api_key: k}
routes:
  chat: {targets: ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku"]}
drills:
  schedule:
    - {cron: "0 3 * * *", target: openai/gpt-4o-mini, fault: outage, duration: 2m}
"""


def at(hour: int, minute: int, second: int = 0) -> float:
    return datetime(2026, 12, 3, hour, minute, second, tzinfo=UTC).timestamp()


async def test_a_scheduled_drill_starts_once_when_its_time_comes() -> None:
    plan = parse_plan(PLAN, file="p.yaml", env={})
    runner = DrillRunner(wall=lambda: at(3, 0, 5))
    runner.attach(Context(plan=lambda: plan, engine=None, flush=None, open_incidents=list))
    try:
        assert runner.start_due(at(2, 58), at(2, 59, 30)) == []  # not yet
        [drill] = runner.start_due(at(2, 59, 30), at(3, 0, 10))
        assert (drill.target, drill.fault, drill.duration, drill.scheduled) == (
            "openai/gpt-4o-mini",
            "outage",
            120.0,
            True,
        )
        assert drill.routes == ["chat"]
        assert runner.start_due(at(3, 0, 10), at(3, 0, 40)) == []  # once
        # the next day's, while the first still runs on that target: not started
        assert runner.start_due(at(2, 59, 30) + 86_400, at(3, 0, 10) + 86_400) == []
    finally:
        await runner.aclose()


def test_a_report_kept_as_json_reads_back_as_the_same_report() -> None:
    for make in (sample.outage, sample.unpublished, sample.quiet):
        report = make()
        assert report_from_dict(report.as_dict()) == report
