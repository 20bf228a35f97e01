"""Atlassian Statuspage v2, and the pages that serve its shape (OpenAI's incident.io page).

One parser reads every document of the public v2 API — ``summary.json`` (status,
components, unresolved incidents, upcoming and active maintenances), ``status.json``,
``components.json``, ``incidents.json`` (which also lists resolved ones),
``scheduled-maintenances.json`` (also the completed ones) — taking from each what it
holds. incident.io's compatible summary may omit ``incidents``. A second parser reads
Statuspage's subscriber webhooks (a component update, or an incident update).

    component status            Level           incident impact / page indicator
    operational                 operational     none
    degraded_performance        degraded        minor
    partial_outage              partial_outage  major
    major_outage                major_outage    critical
    under_maintenance           maintenance     maintenance
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from standby.watch.official.decode import (
    Body,
    Unreadable,
    dicts,
    load_json,
    parse_time,
    plain_text,
)
from standby.watch.official.decode import string as _str
from standby.watch.official.eta import find_eta
from standby.watch.official.model import (
    Level,
    OfficialIncident,
    OfficialUpdate,
    Reading,
    select_components,
    worst_level,
)

COMPONENT_LEVELS = {
    "operational": Level.OPERATIONAL,
    "degraded_performance": Level.DEGRADED,
    "partial_outage": Level.PARTIAL_OUTAGE,
    "major_outage": Level.MAJOR_OUTAGE,
    "under_maintenance": Level.MAINTENANCE,
}
IMPACT_LEVELS = {
    "none": Level.OPERATIONAL,
    "minor": Level.DEGRADED,
    "major": Level.PARTIAL_OUTAGE,
    "critical": Level.MAJOR_OUTAGE,
    "maintenance": Level.MAINTENANCE,
}
# lifecycle words after which an incident or a maintenance is over
FINISHED = frozenset({"resolved", "postmortem", "completed", "cancelled", "canceled"})
_SECTIONS = ("status", "components", "incidents", "scheduled_maintenances")


def parse_statuspage(
    body: Body, *, source_url: str, fetched_at: float, components: Sequence[str] = ()
) -> Reading:
    """A Statuspage v2 document → a reading. ``components``: the watched ones ([]: all)."""
    document = load_json(body)
    if isinstance(document, Unreadable):
        return Reading.failed(source_url, fetched_at, document.reason)
    if not isinstance(document, dict) or not any(key in document for key in _SECTIONS):
        return Reading.failed(
            source_url,
            fetched_at,
            "not a Statuspage v2 document (no status, components, incidents or "
            "scheduled_maintenances)",
        )
    page_url = _page_url(document)
    levels = _component_levels(dicts(document.get("components")))
    incidents = tuple(
        _incident(raw, page_url, maintenance=False)
        for raw in dicts(document.get("incidents"))
        if _str(raw.get("status")).lower() not in FINISHED
    )
    maintenances = tuple(
        _incident(raw, page_url, maintenance=True)
        for raw in dicts(document.get("scheduled_maintenances"))
        if _str(raw.get("status")).lower() not in FINISHED
    )
    status = document.get("status")
    if isinstance(status, dict) and "indicator" in status:
        indicator = IMPACT_LEVELS.get(_str(status.get("indicator")), Level.UNKNOWN)
    elif "components" in document or "incidents" in document:
        indicator = worst_level(
            [Level.OPERATIONAL, *levels.values(), *(i.impact for i in incidents)]
            + [Level.MAINTENANCE for m in maintenances if m.status == "in_progress"]
        )
    elif any(m.status == "in_progress" for m in maintenances):
        indicator = Level.MAINTENANCE
    else:  # only maintenances, none under way: the document says nothing of health
        indicator = Level.UNKNOWN
    return Reading(
        source_url=source_url,
        fetched_at=fetched_at,
        indicator=indicator,
        components=select_components(levels, components, Level.UNKNOWN),
        incidents=incidents,
        maintenances=maintenances,
    )


def parse_statuspage_webhook(
    body: Body, *, source_url: str, fetched_at: float, components: Sequence[str] = ()
) -> Reading:
    """A Statuspage subscriber webhook (a component or an incident update) → a reading of
    what it tells: the page's indicator, the component(s) it names, the incident if it is
    still open. Components it does not name read ``unknown``."""
    document = load_json(body)
    if isinstance(document, Unreadable):
        return Reading.failed(source_url, fetched_at, document.reason)
    if not isinstance(document, dict):
        return Reading.failed(source_url, fetched_at, "not a Statuspage webhook (not an object)")
    page = document.get("page")
    if not isinstance(page, dict):
        page = {}
    component = document.get("component")
    incident = document.get("incident")
    if not isinstance(component, dict) and not isinstance(incident, dict):
        return Reading.failed(
            source_url, fetched_at, "not a Statuspage webhook (no component, no incident)"
        )
    levels: dict[str, Level] = {}
    incidents: tuple[OfficialIncident, ...] = ()
    maintenances: tuple[OfficialIncident, ...] = ()
    if isinstance(component, dict):
        update = document.get("component_update")
        status = _str(component.get("status"))
        if not status and isinstance(update, dict):
            status = _str(update.get("new_status"))
        levels = _component_levels([{**component, "status": status}])
    if isinstance(incident, dict):
        levels.update(_component_levels(dicts(incident.get("components"))))
        if _str(incident.get("status")).lower() not in FINISHED:
            maintenance = _str(incident.get("impact")) == "maintenance" or bool(
                incident.get("scheduled_for")
            )
            record = _incident(incident, _str(page.get("url")), maintenance=maintenance)
            if maintenance:
                maintenances = (record,)
            else:
                incidents = (record,)
    indicator = IMPACT_LEVELS.get(_str(page.get("status_indicator")), Level.UNKNOWN)
    return Reading(
        source_url=source_url,
        fetched_at=fetched_at,
        indicator=indicator,
        components=select_components(levels, components, Level.UNKNOWN),
        incidents=incidents,
        maintenances=maintenances,
    )


def _page_url(document: dict[str, Any]) -> str:
    page = document.get("page")
    return _str(page.get("url")) if isinstance(page, dict) else ""


def _component_levels(raw: Iterable[dict[str, Any]]) -> dict[str, Level]:
    levels: dict[str, Level] = {}
    for component in raw:
        name = _str(component.get("name")).strip()
        if not name:
            continue
        level = COMPONENT_LEVELS.get(_str(component.get("status")), Level.UNKNOWN)
        # two components of one name (in two groups): the worse one speaks for both
        levels[name] = worst_level([level, levels.get(name, Level.UNKNOWN)])
    return levels


def _incident(raw: dict[str, Any], page_url: str, *, maintenance: bool) -> OfficialIncident:
    ident = _str(raw.get("id"))
    updates = _updates(dicts(raw.get("incident_updates")))
    url = _str(raw.get("shortlink"))
    if not url and page_url and ident:  # maintenances live under /incidents/ too
        url = f"{page_url.rstrip('/')}/incidents/{ident}"
    if maintenance:
        impact = Level.MAINTENANCE
        started = parse_time(raw.get("scheduled_for")) or parse_time(raw.get("started_at"))
        until = _str(raw.get("scheduled_until"))
        eta = until or find_eta(updates)
    else:
        impact = IMPACT_LEVELS.get(_str(raw.get("impact")), Level.UNKNOWN)
        started = parse_time(raw.get("started_at")) or parse_time(raw.get("created_at"))
        eta = find_eta(updates)
    return OfficialIncident(
        id=ident,
        name=_str(raw.get("name")).strip(),
        status=_str(raw.get("status")).lower(),
        impact=impact,
        started_at=started,
        url=url,
        updates=updates,
        eta=eta,
        components=_affected(raw),
    )


def _updates(raw: Iterable[dict[str, Any]]) -> tuple[OfficialUpdate, ...]:
    updates = [
        OfficialUpdate(
            at=parse_time(update.get("display_at")) or parse_time(update.get("created_at")) or 0.0,
            status=_str(update.get("status")).lower(),
            body=plain_text(_str(update.get("body"))),
        )
        for update in raw
    ]
    return tuple(sorted(updates, key=lambda update: update.at, reverse=True))


def _affected(raw: dict[str, Any]) -> tuple[str, ...]:
    names = [_str(component.get("name")) for component in dicts(raw.get("components"))]
    if not names:  # an incident without its components: those its updates touched
        for update in dicts(raw.get("incident_updates")):
            names += [_str(c.get("name")) for c in dicts(update.get("affected_components"))]
    return tuple(dict.fromkeys(name.strip() for name in names if name.strip()))
