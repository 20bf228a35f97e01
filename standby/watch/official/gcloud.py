"""Google Cloud's service health feed, ``https://status.cloud.google.com/incidents.json``.

A bare list of incidents, open and closed, over every product of Google Cloud: an
incident is open while ``end`` is absent or empty. Each names its ``affected_products``
(``title``, ``id``, and since the 2026 renaming sometimes a ``current_title``: "Vertex
Gemini API" is shown as "Gemini on Agent Platform"). Its current level comes from the
latest update's ``status`` when that is known, else from ``status_impact``:

    SERVICE_OUTAGE       major_outage
    SERVICE_DISRUPTION   degraded (partial_outage when ``severity`` is high)
    SERVICE_INFORMATION  degraded
    AVAILABLE            operational (open, but service is back)

The feed has no component table: a watched product with no open incident is
``operational`` ("nothing declared"). Because the feed spans the whole cloud, a watch
list also scopes the incidents and the indicator to the watched products. Google Cloud
publishes no maintenance feed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin

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
    worst_level,
)

STATUS_LEVELS = {
    "SERVICE_OUTAGE": Level.MAJOR_OUTAGE,
    "SERVICE_DISRUPTION": Level.DEGRADED,
    "SERVICE_INFORMATION": Level.DEGRADED,
    "AVAILABLE": Level.OPERATIONAL,
}
SEVERITY_LEVELS = {"high": Level.PARTIAL_OUTAGE, "medium": Level.DEGRADED, "low": Level.DEGRADED}


def parse_google_cloud(
    body: Body, *, source_url: str, fetched_at: float, components: Sequence[str] = ()
) -> Reading:
    """Google Cloud's ``incidents.json`` → a reading. ``components``: the watched
    products by title, current title or id ([]: every product with an open incident)."""
    document = load_json(body)
    if isinstance(document, Unreadable):
        return Reading.failed(source_url, fetched_at, document.reason)
    if not isinstance(document, list):
        return Reading.failed(
            source_url, fetched_at, "not Google Cloud's incidents.json (not a list of incidents)"
        )
    watch = {name.casefold(): name for name in components}
    levels: dict[str, Level] = {name: Level.OPERATIONAL for name in components}
    incidents: list[OfficialIncident] = []
    for raw in document:
        if not isinstance(raw, dict) or raw.get("end"):
            continue
        incident = _incident(raw, source_url)
        if watch:
            hit = {watch[alias] for alias in _aliases(raw) if alias in watch}
        else:
            hit = set(incident.components)
        if not hit:
            continue
        incidents.append(incident)
        for name in hit:
            levels[name] = worst_level([levels.get(name, Level.UNKNOWN), incident.impact])
    indicator = worst_level([Level.OPERATIONAL, *(i.impact for i in incidents)])
    return Reading(
        source_url=source_url,
        fetched_at=fetched_at,
        indicator=indicator,
        components=levels,
        incidents=tuple(incidents),
    )


def _products(raw: dict[str, Any]) -> list[dict[str, Any]]:
    found = dicts(raw.get("affected_products"))
    if not found and _str(raw.get("service_name")):  # the older, deprecated fields
        found = [{"title": raw["service_name"], "id": _str(raw.get("service_key"))}]
    return found


def _aliases(raw: dict[str, Any]) -> set[str]:
    return {
        _str(product.get(key)).casefold()
        for product in _products(raw)
        for key in ("title", "current_title", "id")
        if _str(product.get(key))
    }


def _impact(raw: dict[str, Any]) -> Level:
    latest = raw.get("most_recent_update")
    status = _str(latest.get("status")) if isinstance(latest, dict) else ""
    if status not in STATUS_LEVELS:
        status = _str(raw.get("status_impact"))
    severity = _str(raw.get("severity")).lower()
    level = STATUS_LEVELS.get(status)
    if level is None:
        return SEVERITY_LEVELS.get(severity, Level.UNKNOWN)
    if status == "SERVICE_DISRUPTION" and severity == "high":
        return Level.PARTIAL_OUTAGE
    return level


def _incident(raw: dict[str, Any], source_url: str) -> OfficialIncident:
    updates = tuple(
        sorted(
            (
                OfficialUpdate(
                    at=parse_time(u.get("when")) or parse_time(u.get("created")) or 0.0,
                    status=_str(u.get("status")).lower(),
                    body=plain_text(_str(u.get("text"))),
                )
                for u in dicts(raw.get("updates"))
            ),
            key=lambda update: update.at,
            reverse=True,
        )
    )
    uri = _str(raw.get("uri"))
    latest = raw.get("most_recent_update")
    status = _str(latest.get("status")) if isinstance(latest, dict) else ""
    titles = (_str(p.get("title")).strip() for p in _products(raw))
    return OfficialIncident(
        id=_str(raw.get("id")),
        name=" ".join(_str(raw.get("external_desc")).split()),
        status=(status or _str(raw.get("status_impact")) or "open").lower(),
        impact=_impact(raw),
        started_at=parse_time(raw.get("begin")) or parse_time(raw.get("created")),
        url=urljoin(source_url, uri) if uri else "",
        updates=updates,
        eta=find_eta(updates),
        components=tuple(dict.fromkeys(title for title in titles if title)),
    )
