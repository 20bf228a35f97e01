"""A report from the journal: an incident's (``incident_report``) or any window's
(``window_report``).

The figures cover the incident from the first failure Standby saw to its resolution (or
now); the charts show a margin before and after, so the return to normal is visible.
What the provider said comes from the incidents Standby opened about its targets, which
carry the provider's own incident and updates when its status page declared one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from standby.errors import ClientError
from standby.incidents.manager import route_targets
from standby.journal.incident_store import IncidentRow, IncidentStore
from standby.plan.model import Plan
from standby.reports import advice
from standby.reports.figures import Folded, Prices, fold
from standby.reports.model import Entry, Report, RootCause, Timings
from standby.reports.requests import baseline_latencies, baseline_spans, read_facts

Span = tuple[float, float]
MAX_BUCKETS = 120  # points of a chart
MIN_BUCKET = 60.0  # seconds


class ReportNotFound(ClientError):
    """No incident of that id in the journal."""

    status = 404
    code = "not_found"


@dataclass(frozen=True, slots=True)
class Scope:
    """What a report covers: the figures' window, the charts' wider one, the routes."""

    start: float
    end: float
    chart_start: float
    chart_end: float
    routes: frozenset[str] | None  # None: every route

    @property
    def bucket(self) -> float:
        span = self.chart_end - self.chart_start
        return max(MIN_BUCKET, math.ceil(span / MAX_BUCKETS / MIN_BUCKET) * MIN_BUCKET)


def margin(start: float, end: float) -> float:
    """How much of before and after the charts show: a tenth, from 1 to 10 minutes."""
    return min(600.0, max(60.0, (end - start) / 10.0))


def primaries(plan: Plan) -> dict[str, frozenset[str]]:
    """Route → the targets of its first tier (what "the primary" means in a report)."""
    found: dict[str, frozenset[str]] = {}
    for name, route in plan.routes.items():
        tiers = route.tier_list()
        if tiers:
            found[name] = frozenset(ref.target for ref in tiers[0] if "{" not in ref.target)
    return found


def prices(plan: Plan) -> Prices:
    return {target: (p.input, p.output) for target, p in plan.prices.items()}


def routes_of(plan: Plan, component: str) -> frozenset[str] | None:
    """The routes an incident's component is about (None: all of them)."""
    if component.startswith("route:"):
        return frozenset({component.removeprefix("route:")})
    if component.startswith("target:"):
        key = component.removeprefix("target:")
        return frozenset(r for r, keys in route_targets(plan).items() if key in keys)
    return None


async def _fold(
    engine: AsyncEngine, plan: Plan, scope: Scope, baseline: Sequence[Span] | None = None
) -> tuple[Folded, Folded]:
    """The figures over the incident's window and the series over the charts' one;
    ``baseline``: the spans latency is compared with (default: the same hours of the 7
    days before)."""
    facts = await read_facts(engine, scope.chart_start, scope.chart_end, scope.routes)
    inside = [f for f in facts if scope.start <= f.received_at < scope.end]
    spans = baseline if baseline is not None else baseline_spans(scope.start, scope.end)
    before = await baseline_latencies(engine, spans, scope.routes)
    firsts, priced = primaries(plan), prices(plan)
    figures = fold(
        inside,
        primaries=firsts,
        prices=priced,
        baseline_seconds=before,
        start=scope.start,
        end=scope.end,
        bucket=scope.bucket,
    )
    charts = fold(
        facts,
        primaries=firsts,
        prices=priced,
        baseline_seconds=(),
        start=scope.chart_start,
        end=scope.chart_end,
        bucket=scope.bucket,
    )
    return figures, charts


async def incident_report(
    engine: AsyncEngine,
    plan: Plan,
    incident_id: str,
    *,
    wall: Callable[[], float] = time.time,
    baseline: Sequence[Span] | None = None,
) -> Report:
    """The post-outage report of incident ``incident_id``."""
    store = IncidentStore(engine)
    incident = await store.get(incident_id)
    if incident is None:
        raise ReportNotFound(f"no incident {incident_id!r} in the journal")
    now = wall()
    start = min(t for t in (incident.first_failure_at, incident.opened_at) if t is not None)
    end = incident.resolved_at if incident.resolved_at is not None else now
    pad = margin(start, end)
    scope = Scope(start, end, start - pad, min(now, end + pad), routes_of(plan, incident.component))
    figures, charts = await _fold(engine, plan, scope, baseline)
    related = await _related(store, plan, incident, scope)
    root = _root_cause(related, figures)
    # moments from the wider window: the first failures may come before the incident's
    timings = _timings(incident, charts, related)
    timeline = _timeline(incident, charts)
    return Report(
        title=incident.title,
        incident_id=incident.id,
        component=incident.component,
        severity=incident.severity,
        status=incident.status,
        start=scope.start,
        end=scope.end,
        generated_at=now,
        summary=advice.summary(
            incident.title, figures.impact, timings, root, resolved=not incident.open
        ),
        impact=figures.impact,
        timings=timings,
        timeline=timeline,
        root_cause=root,
        went_well=advice.went_well(figures.impact, timings),
        went_badly=advice.went_badly(figures.impact, timings),
        actions=advice.actions(plan, figures.impact, timings, scope.routes),
        series=charts.series,
        bucket_seconds=scope.bucket,
    )


async def window_report(
    engine: AsyncEngine,
    plan: Plan,
    start: float,
    end: float,
    *,
    wall: Callable[[], float] = time.time,
    baseline: Sequence[Span] | None = None,
    routes: frozenset[str] | None = None,
    title: str | None = None,
) -> Report:
    """A report over ``[start, end)`` with no incident: the figures of ``routes`` (of
    every route by default)."""
    if end <= start:
        raise ReportNotFound("the window is empty: --until must come after --since")
    now = wall()
    scope = Scope(start, end, start, end, routes)
    figures, charts = await _fold(engine, plan, scope, baseline)
    store = IncidentStore(engine)
    incidents = [
        i
        for i in await store.recent(limit=500, before=end)
        if (i.resolved_at is None or i.resolved_at >= start)
    ]
    root = _root_cause([i for i in incidents if i.official], figures)
    m = figures.moments
    first = m.first_failure
    timings = Timings(
        duration=end - start,
        to_detect=None,
        to_failover=_after(first, m.first_fallback_answer),
        to_notify=None,
        to_recover=_after(first, m.primary_back),
        provider_lag=None,
    )
    timeline = sorted(
        [Entry(i.opened_at, "incident", f"{i.id} opened: {i.title}") for i in incidents]
        + _traffic_entries(figures),
        key=lambda e: e.at,
    )
    title = title or f"Report {time.strftime('%Y-%m-%d %H:%M', time.gmtime(start))} UTC"
    return Report(
        title=title,
        incident_id=None,
        component="",
        severity="",
        status="",
        start=start,
        end=end,
        generated_at=now,
        summary=advice.summary(title, figures.impact, timings, root, resolved=True),
        impact=figures.impact,
        timings=timings,
        timeline=timeline,
        root_cause=root,
        went_well=advice.went_well(figures.impact, timings),
        went_badly=advice.went_badly(figures.impact, timings),
        actions=advice.actions(plan, figures.impact, timings, None),
        series=charts.series,
        bucket_seconds=scope.bucket,
    )


async def _related(
    store: IncidentStore, plan: Plan, incident: IncidentRow, scope: Scope
) -> list[IncidentRow]:
    """The incidents about the targets of the incident's routes in its window (they
    carry what the providers' pages said), the incident itself first."""
    keys = {
        k
        for r, ks in route_targets(plan).items()
        if scope.routes is None or r in scope.routes
        for k in ks
    }
    found = [incident]
    for other in await store.recent(limit=500, before=scope.end + 1):
        if other.id == incident.id or other.component.removeprefix("target:") not in keys:
            continue
        if other.resolved_at is not None and other.resolved_at < scope.start - 3600:
            continue
        full = await store.get(other.id)
        if full is not None:
            found.append(full)
    return found


def _root_cause(related: list[IncidentRow], figures: Folded) -> RootCause:
    for incident in related:
        official = incident.official or {}
        declared = official.get("incidents") or []
        if declared and isinstance(declared[0], dict):
            first = declared[0]
            updates = [
                Entry(_time(u.get("at")), str(u.get("status") or ""), str(u.get("body") or ""))
                for u in first.get("updates") or []
                if isinstance(u, dict)
            ]
            return RootCause(
                published=True,
                provider=str(official.get("provider") or ""),
                name=str(first.get("name") or ""),
                url=str(first.get("url") or ""),
                updates=sorted(updates, key=lambda e: e.at),
                observed=figures.observed,
            )
    providers = sorted(
        {
            i.component.removeprefix("target:").partition("/")[0]
            for i in related
            if i.component.startswith("target:")
        }
    )
    return RootCause(
        published=False,
        provider=", ".join(providers),
        name="",
        url="",
        updates=[],
        observed=figures.observed,
    )


def _time(value: object) -> float:
    """An update's time: Unix seconds, or an ISO 8601 string as pages give it."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        from datetime import datetime

        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 0.0
    return 0.0


def _after(first: float | None, then: float | None) -> float | None:
    if first is None or then is None:
        return None
    return max(0.0, then - first)


def _timings(incident: IncidentRow, figures: Folded, related: list[IncidentRow]) -> Timings:
    m = figures.moments
    # the detector's record of the first failure; a person's incident starts when opened
    first = (
        incident.first_failure_at if incident.first_failure_at is not None else incident.opened_at
    )
    notified = [e.at for e in incident.events if e.kind == "notified"]
    official = [e.at for i in related for e in i.events if e.kind == "official"]
    end = incident.resolved_at
    return Timings(
        duration=None if end is None else max(0.0, end - first),
        to_detect=max(0.0, incident.opened_at - first),
        to_failover=_after(first, m.first_fallback_answer),
        to_notify=_after(first, min(notified)) if notified else None,
        to_recover=_after(first, m.primary_back),
        provider_lag=(min(official) - incident.opened_at) if official else None,
    )


def _traffic_entries(figures: Folded) -> list[Entry]:
    m = figures.moments
    found = []
    if m.first_failure is not None:
        found.append(Entry(m.first_failure, "traffic", "first failed try on a primary target"))
    if m.first_fallback_answer is not None:
        found.append(Entry(m.first_fallback_answer, "traffic", "first answer served by a fallback"))
    if m.primary_back is not None:
        found.append(Entry(m.primary_back, "traffic", "the primary answered again"))
    return found


def _timeline(incident: IncidentRow, figures: Folded) -> list[Entry]:
    told = [Entry(e.at, e.kind, e.message) for e in incident.events]
    return sorted(told + _traffic_entries(figures), key=lambda e: e.at)
