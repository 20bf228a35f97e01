"""``standby report``: the post-outage report of an incident, or of any window, written
from the journal's database (read only: it works while the gateway runs).

The plan gives the routes (which target is each route's primary), the providers (which
vendor a backup is at) and ``prices``; its ``${VAR}``s need not be set (a report is
written where the providers' keys may not be).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import click

from standby.errors import PlanError
from standby.ops.cli import _plan_url, _reading, _run, _when, plan_option
from standby.plan.load import load_plan
from standby.plan.model import Plan
from standby.reports.build import ReportNotFound, incident_report, window_report
from standby.reports.model import Report
from standby.reports.render import FORMATS, render

UNSET = "unset"  # what an unset ${VAR} reads as here: no key is ever used


class _Lenient(Mapping[str, str]):
    """The environment, where an unset variable reads as ``UNSET``."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def __getitem__(self, name: str) -> str:
        return self.env.get(name, UNSET)

    def __iter__(self) -> Iterator[str]:
        return iter(self.env)

    def __len__(self) -> int:
        return len(self.env)


def _plan(plan_path: str | None) -> Plan:
    """The plan the gateway serves, or (without one) an empty plan: every route's first
    try then stands for its primary."""
    if not plan_path:
        return Plan.model_construct(providers={}, routes={})
    try:
        return load_plan(plan_path, _Lenient(os.environ))
    except PlanError as error:
        raise click.ClickException(str(error)) from None


@click.command("report")
@click.argument("incident_id", required=False)
@plan_option
@click.option(
    "--since", metavar="WHEN", help="A window's start, without INCIDENT_ID: 2h, ISO 8601…"
)
@click.option("--until", metavar="WHEN", help="The window's end (default: now).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="markdown",
    show_default=True,
    help="markdown; html: one self-contained page with charts, that prints well; json: "
    "every figure.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default="-",
    show_default=True,
    help="File to write, or - for stdout.",
)
def report_command(
    incident_id: str | None,
    plan_path: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
    output: str,
) -> None:
    """Write the post-outage report of INCIDENT_ID, or of a window (--since/--until),
    from the journal: impact (requests answered by the primary and by each fallback,
    failed by error class, deferred, streams continued mid-answer, added latency
    against the same hours of the previous 7 days, tokens and cost), detection,
    response and recovery times, the timeline, the provider's own words, what went
    well and badly, and action items.

    \b
    standby report inc_2026-12-03_1a2b --plan plan.yaml --format html -o outage.html
    standby report --plan plan.yaml --since 2026-12-03T09:00 --until 2026-12-03T11:00
    """
    if incident_id and (since or until):
        raise click.UsageError("give INCIDENT_ID or --since/--until, not both")
    if not incident_id and not since:
        raise click.UsageError("give INCIDENT_ID (see `standby incidents list`) or --since")
    now = time.time()
    start, end = _when(since, "--since", now), _when(until, "--until", now)
    plan = _plan(plan_path)
    url = _plan_url(plan_path)

    async def work() -> Report:
        async with _reading(url) as store:
            if incident_id:
                return await incident_report(store.engine, plan, incident_id)
            assert start is not None
            return await window_report(store.engine, plan, start, end if end else now)

    try:
        report = _run(work)
    except ReportNotFound as error:
        raise click.ClickException(error.message) from None
    text = render(report, fmt)
    if output == "-":
        sys.stdout.write(text)
        return
    Path(output).write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}", err=True)
