"""What the public status page says, computed from the plan and Standby's incidents.

The page is about what *customers* experienced, not what providers had: a component
(``status_page.components``: a customer-facing name and the routes that serve it) is
down only when a route of it could not be served — a route incident, opened when every
target of the route is failing — or when a person opened an incident under the
component's name.  An outage of one provider that Standby absorbed by failing over is an
incident of a *target*: internal, never shown.  No provider, model or target name ever
appears; a route incident is described in the component's words.

An incident is *published* — listed with its updates — when the plan's escalation
reaches a ``publish: status-page`` step (``Notify.publish_after``), when a person
publishes it, or at once when a person opened it; a component's state is the truth
either way.  Updates nobody wrote are worded from the plan's templates
(``status_page.templates``, per incident status and language), filled with the
component, the start time and the provider's own estimate of restoration when its page
gave one.  With the journal's hourly figures each component also gets its 90-day
``History`` (``statuspage.history``).

Pure: plan, incidents and figures in, a ``PageView`` out; ``at`` is passed in.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from standby.journal.incident_store import IncidentRow
from standby.journal.traffic_store import HourFigures
from standby.plan.model import Plan
from standby.statuspage.history import History, Summary, build_history, summarise

# Statuspage's component statuses, from best to worst, and the page indicator of each
OPERATIONAL = "operational"
DEGRADED = "degraded_performance"
PARTIAL = "partial_outage"
MAJOR = "major_outage"
MAINTENANCE = "under_maintenance"
_ORDER = (OPERATIONAL, MAINTENANCE, DEGRADED, PARTIAL, MAJOR)
_INDICATOR = {
    OPERATIONAL: "none",
    MAINTENANCE: "maintenance",
    DEGRADED: "minor",
    PARTIAL: "major",
    MAJOR: "critical",
}
_DESCRIPTION = {
    "none": "All Systems Operational",
    "maintenance": "Service Under Maintenance",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major System Outage",
}
_PUBLIC_STATUS = {  # Standby's incident statuses are Statuspage's already
    "investigating": "investigating",
    "identified": "identified",
    "monitoring": "monitoring",
    "resolved": "resolved",
}


def stable_id(*parts: str) -> str:
    """A short, stable, opaque id (Statuspage's ids are opaque strings too)."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def iso(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True, slots=True)
class Update:
    id: str
    status: str
    body: str
    at: float


@dataclass(frozen=True, slots=True)
class PublicIncident:
    id: str
    name: str
    status: str  # investigating | identified | monitoring | resolved
    impact: str  # none | minor | major | critical
    created_at: float
    updated_at: float
    resolved_at: float | None
    monitoring_at: float | None
    components: tuple[str, ...]  # public component names
    updates: tuple[Update, ...]  # newest first, as Statuspage lists them
    eta: str | None = None  # the provider's own estimate of restoration, when it gave one


@dataclass(frozen=True, slots=True)
class Component:
    id: str
    name: str
    description: str
    status: str
    position: int
    routes: tuple[str, ...] = ()
    history: History | None = None  # its 90 days, when the journal keeps figures


@dataclass(frozen=True, slots=True)
class Maintenance:
    id: str
    name: str
    status: str  # scheduled | in_progress | completed
    scheduled_for: float
    scheduled_until: float
    components: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PageView:
    id: str
    name: str
    url: str
    updated_at: float
    indicator: str
    description: str
    components: tuple[Component, ...]
    incidents: tuple[PublicIncident, ...] = field(default_factory=tuple)  # newest first
    maintenances: tuple[Maintenance, ...] = field(default_factory=tuple)
    language: str = "en"  # of the worded updates

    @property
    def unresolved(self) -> tuple[PublicIncident, ...]:
        return tuple(i for i in self.incidents if i.status != "resolved")


def components_of(plan: Plan) -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, description, routes) of every public component, in the plan's order."""
    page = plan.status_page
    if page.components:
        found = []
        for name, component in page.components.items():
            routes = tuple(
                route
                for route in plan.routes
                if any(fnmatch.fnmatchcase(route, pattern) for pattern in component.routes)
            )
            found.append((name, component.description, routes))
        return found
    return [(route, "", (route,)) for route in plan.routes]


def _affects(incident: IncidentRow, name: str, routes: tuple[str, ...]) -> bool:
    if incident.component.startswith("route:"):
        return incident.component.removeprefix("route:") in routes
    return incident.component == name  # a person's incident, under the component's name


def is_published(incident: IncidentRow, plan: Plan, at: float) -> bool:
    """Whether customers may read about ``incident`` (see the module's text)."""
    if incident.source == "manual" or any(e.kind == "published" for e in incident.events):
        return True
    after = plan.notify.publish_after
    return after is not None and at - incident.opened_at >= after


def next_change(plan: Plan, incidents: list[IncidentRow], at: float) -> float:
    """When the page built at ``at`` would read differently with nothing else changing:
    the next UTC midnight (a new day cell), a whole-service maintenance window starting
    or ending, an open incident whose publish step comes."""
    moments = [(at // 86_400 + 1) * 86_400]
    for start, end in maintenance_spans(plan):
        moments += [m for m in (start, end) if m > at]
    after = plan.notify.publish_after
    if after is not None:
        moments += [
            i.opened_at + after
            for i in incidents
            if i.open and i.opened_at + after > at and not is_published(i, plan, at)
        ]
    return min(moments)


def _title(incident: IncidentRow, names: tuple[str, ...]) -> str:
    """What customers read as the incident's name: a route's incident in the words of
    its components (never a provider's), a person's as they wrote it."""
    if not incident.component.startswith("route:"):
        return incident.title
    what = " and ".join(names)
    return f"{what} unavailable" if incident.severity == "major" else f"{what} degraded"


def _human(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%b %d, %H:%M UTC")


def _public(
    incident: IncidentRow, names: tuple[str, ...], words: dict[str, str], eta: str | None
) -> PublicIncident:
    impact = "critical" if incident.severity == "major" else "minor"
    fields = {
        "component": " and ".join(names),
        "started": _human(incident.first_failure_at or incident.opened_at),
        "eta": "",
    }
    if eta:
        fields["eta"] = words["eta"].format(**{**fields, "eta": eta})

    def worded(status: str) -> str:
        return words[status].format(**fields)

    title = _title(incident, names)
    updates = []
    for event in incident.events:
        # what customers are told: openings, people's updates, monitoring, resolution —
        # never the detector's reasons, targets, notifications or the provider's words
        # (an acknowledgement is internal: who is on it is not news for customers)
        if event.kind in ("opened", "update", "monitoring", "relapsed"):
            then = (event.data or {}).get("status") if event.kind == "update" else None
            status = {"monitoring": "monitoring", "relapsed": "investigating"}.get(
                event.kind,
                str(then or incident.status) if event.kind == "update" else "investigating",
            )
            if status not in _PUBLIC_STATUS:
                status = "investigating"
            # people's words are published as written; everything else from a template
            # (the detector's reasons, who acknowledged: internal)
            written = event.kind == "update" or (
                event.kind == "opened"
                and incident.source == "manual"
                and not event.message.startswith("opened by hand")
            )
            body = event.message if written else ""
            if not body:
                body = worded(status)
            update_id = stable_id(incident.id, str(event.at), event.kind)
            updates.append(Update(update_id, status, body, event.at))
        elif event.kind == "resolved":
            updates.append(
                Update(
                    stable_id(incident.id, str(event.at), "resolved"),
                    "resolved",
                    event.message
                    if incident.source == "manual" and event.message
                    else worded("resolved"),
                    event.at,
                )
            )
    monitoring = [e.at for e in incident.events if e.kind == "monitoring"]
    return PublicIncident(
        id=stable_id("incident", incident.id),
        name=title,
        status=_PUBLIC_STATUS.get(incident.status, "investigating"),
        impact=impact,
        created_at=incident.opened_at,
        updated_at=incident.updated_at,
        resolved_at=incident.resolved_at,
        monitoring_at=monitoring[-1] if monitoring else None,
        components=names,
        updates=tuple(sorted(updates, key=lambda u: u.at, reverse=True)),
        eta=eta if incident.open else None,
    )


def maintenance_spans(plan: Plan) -> list[tuple[float, float]]:
    """The plan's whole-service maintenance windows (a provider's is not customers')."""
    return [
        (w.start.timestamp(), w.end.timestamp())
        for w in plan.incidents.maintenance
        if not w.providers
    ]


def summaries_of(plan: Plan, hours: list[HourFigures], at: float) -> dict[str, Summary]:
    """Each public component's figures, folded from the hours of its routes."""
    maintenance = maintenance_spans(plan)
    return {
        name: summarise([h for h in hours if h.route in routes], maintenance, at)
        for name, _, routes in components_of(plan)
    }


def build(
    plan: Plan,
    incidents: list[IncidentRow],
    at: float,
    *,
    hours: list[HourFigures] | None = None,
    summaries: Mapping[str, Summary] | None = None,
    etas: dict[str, str] | None = None,
    language: str | None = None,
    created_at: float | None = None,
) -> PageView:
    """The page now, from the plan and Standby's incidents (open and recent).

    With ``hours`` (the journal's figures of every route since 90 days), or their
    ``summaries`` folded already (``summaries_of``), each component gets its history;
    ``etas``: incident id → the provider's estimate; ``language`` of the templates
    (default: the page's)."""
    page = plan.status_page
    if not plan.drills.public:  # a drill's incidents are rehearsals, not news
        incidents = [i for i in incidents if i.source != "drill"]
    words = page.words(language)
    etas = etas or {}
    maintenance = maintenance_spans(plan)
    if summaries is None and hours is not None:
        summaries = summaries_of(plan, hours, at)
    components: list[Component] = []
    published: dict[str, list[str]] = {}  # incident id → the components it affects
    for position, (name, description, routes) in enumerate(components_of(plan), 1):
        status = OPERATIONAL
        mine: list[tuple[IncidentRow, str]] = []
        for incident in incidents:
            if not _affects(incident, name, routes):
                continue
            shown_now = is_published(incident, plan, at)
            mine.append((incident, _title(incident, (name,)) if shown_now else ""))
            if shown_now:
                published.setdefault(incident.id, []).append(name)
            if incident.open:
                worst = MAJOR if incident.severity == "major" else DEGRADED
                if _ORDER.index(worst) > _ORDER.index(status):
                    status = worst
        if status == OPERATIONAL and _in_maintenance(plan, at):
            status = MAINTENANCE
        history = None
        if summaries is not None and name in summaries:
            history = build_history(
                summaries[name],
                mine,
                maintenance,
                at,
                created_at=created_at,
            )
        components.append(
            Component(
                stable_id("component", name),
                name,
                description,
                status,
                position,
                routes,
                history,
            )
        )
    worst = max((c.status for c in components), key=_ORDER.index, default=OPERATIONAL)
    indicator = _INDICATOR[worst]
    shown = [
        _public(incident, tuple(published[incident.id]), words, etas.get(incident.id))
        for incident in incidents
        if incident.id in published
    ]
    shown.sort(key=lambda i: i.created_at, reverse=True)
    return PageView(
        id=stable_id("page", page.title),
        name=page.title,
        url=page.url,
        updated_at=at,
        indicator=indicator,
        description=_DESCRIPTION[indicator],
        components=tuple(components),
        incidents=tuple(shown),
        maintenances=tuple(_maintenances(plan, components, at)),
        language=language if language in page.languages else page.language,
    )


def _in_maintenance(plan: Plan, at: float) -> bool:
    moment = datetime.fromtimestamp(at, UTC)
    return any(
        not window.providers and window.start <= moment < window.end
        for window in plan.incidents.maintenance
    )


def _maintenances(plan: Plan, components: list[Component], at: float) -> list[Maintenance]:
    """The plan's maintenance windows that concern the whole service, as customers see
    them (a window for one provider is absorbed by failing over: not shown)."""
    found = []
    moment = datetime.fromtimestamp(at, UTC)
    names = tuple(c.name for c in components)
    for window in plan.incidents.maintenance:
        if window.providers:
            continue
        status = (
            "completed"
            if moment >= window.end
            else ("in_progress" if moment >= window.start else "scheduled")
        )
        found.append(
            Maintenance(
                id=stable_id("maintenance", window.start.isoformat(), window.end.isoformat()),
                name=window.note or "Scheduled maintenance",
                status=status,
                scheduled_for=window.start.timestamp(),
                scheduled_until=window.end.timestamp(),
                components=names,
            )
        )
    return found
