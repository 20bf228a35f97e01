"""The public status page's machine-readable side: Atlassian Statuspage's v2 API, with its
field names and vocabulary, so existing Statuspage consumers (and Standby's own reader,
``watch.official``) read it unchanged.

    GET /status/api/v2/summary.json                 page, status, components, unresolved
                                                    incidents, scheduled maintenances
    GET /status/api/v2/status.json                  page and status
    GET /status/api/v2/components.json
    GET /status/api/v2/incidents.json               the 50 most recent
    GET /status/api/v2/incidents/unresolved.json
    GET /status/api/v2/scheduled-maintenances.json

Public and read-only: nothing here names a provider, a model, a target or a client, and
every answer carries an ETag (``If-None-Match`` → 304) and a short ``Cache-Control``, so
a flood of visitors during an outage costs little.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from standby.statuspage.caching import Rendered, respond
from standby.statuspage.model import Component, Maintenance, PageView, PublicIncident, iso

PREFIX = "/status/api/v2"
MAX_AGE = 10  # seconds a visitor's cache may keep an answer
RECENT = 50  # incidents in incidents.json


def page_json(view: PageView) -> dict[str, Any]:
    return {
        "id": view.id,
        "name": view.name,
        "url": view.url,
        "time_zone": "Etc/UTC",
        "updated_at": iso(view.updated_at),
    }


def status_json(view: PageView) -> dict[str, Any]:
    return {"indicator": view.indicator, "description": view.description}


def component_json(view: PageView, component: Component) -> dict[str, Any]:
    return {
        "id": component.id,
        "name": component.name,
        "status": component.status,
        "created_at": iso(view.updated_at),
        "updated_at": iso(view.updated_at),
        "position": component.position,
        "description": component.description or None,
        "showcase": True,
        "start_date": None,
        "group_id": None,
        "page_id": view.id,
        "group": False,
        "only_show_if_degraded": False,
    }


def _affected(view: PageView, names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [component_json(view, c) for c in view.components if c.name in names]


def incident_json(view: PageView, incident: PublicIncident) -> dict[str, Any]:
    base = view.url.rstrip("/")
    return {
        "id": incident.id,
        "name": incident.name,
        "status": incident.status,
        "created_at": iso(incident.created_at),
        "updated_at": iso(incident.updated_at),
        "monitoring_at": iso(incident.monitoring_at),
        "resolved_at": iso(incident.resolved_at),
        "impact": incident.impact,
        "shortlink": f"{base}/incidents/{incident.id}"
        if base
        else f"/status/incidents/{incident.id}",
        "started_at": iso(incident.created_at),
        "page_id": view.id,
        "incident_updates": [
            {
                "id": update.id,
                "status": update.status,
                "body": update.body,
                "incident_id": incident.id,
                "created_at": iso(update.at),
                "updated_at": iso(update.at),
                "display_at": iso(update.at),
                "affected_components": [
                    {"code": c.id, "name": c.name, "old_status": None, "new_status": c.status}
                    for c in view.components
                    if c.name in incident.components
                ],
                "deliver_notifications": True,
                "custom_tweet": None,
                "tweet_id": None,
            }
            for update in incident.updates
        ],
        "components": _affected(view, incident.components),
    }


def maintenance_json(view: PageView, window: Maintenance) -> dict[str, Any]:
    return {
        "id": window.id,
        "name": window.name,
        "status": window.status,
        "created_at": iso(window.scheduled_for),
        "updated_at": iso(view.updated_at),
        "monitoring_at": None,
        "resolved_at": iso(window.scheduled_until) if window.status == "completed" else None,
        "impact": "maintenance",
        "shortlink": view.url or "/status",
        "started_at": iso(window.scheduled_for),
        "page_id": view.id,
        "incident_updates": [],
        "components": _affected(view, window.components),
        "scheduled_for": iso(window.scheduled_for),
        "scheduled_until": iso(window.scheduled_until),
    }


def summary_json(view: PageView) -> dict[str, Any]:
    return {
        "page": page_json(view),
        "status": status_json(view),
        "components": [component_json(view, c) for c in view.components],
        "incidents": [incident_json(view, i) for i in view.unresolved],
        "scheduled_maintenances": [
            maintenance_json(view, m) for m in view.maintenances if m.status != "completed"
        ],
    }


def documents(view: PageView) -> dict[str, dict[str, Any]]:
    """Path (below ``PREFIX``) → the document it serves."""
    page = page_json(view)
    return {
        "/summary.json": summary_json(view),
        "/status.json": {"page": page, "status": status_json(view)},
        "/components.json": {
            "page": page,
            "components": [component_json(view, c) for c in view.components],
        },
        "/incidents.json": {
            "page": page,
            "incidents": [incident_json(view, i) for i in view.incidents[:RECENT]],
        },
        "/incidents/unresolved.json": {
            "page": page,
            "incidents": [incident_json(view, i) for i in view.unresolved],
        },
        "/scheduled-maintenances.json": {
            "page": page,
            "scheduled_maintenances": [maintenance_json(view, m) for m in view.maintenances],
        },
    }


def routes(view: Callable[[], Awaitable[PageView]]) -> list[Route]:
    """The API's routes; ``view()`` builds the page as it is now."""
    rendered = Rendered()

    async def serve(request: Request) -> Response:
        path = request.url.path.removeprefix(PREFIX)
        shown = await view()

        def make() -> tuple[bytes, bytes]:
            document = documents(shown)[path]
            # the ETag ignores updated_at (which moves with each build), so an unchanged
            # page is a 304
            stable = {key: value for key, value in document.items() if key != "page"}
            return orjson.dumps(document), orjson.dumps(stable)

        return respond(
            request,
            rendered.get(shown, path, make),
            "application/json",
            max_age=MAX_AGE,
            headers={"Access-Control-Allow-Origin": "*"},
        )

    return [
        Route(f"{PREFIX}{path}", serve, methods=["GET"])
        for path in (
            "/summary.json",
            "/status.json",
            "/components.json",
            "/incidents.json",
            "/incidents/unresolved.json",
            "/scheduled-maintenances.json",
        )
    ]
