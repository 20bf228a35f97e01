"""The admin API of incidents and of the live status view (admin token required).

    GET  /standby/incidents?open=true&limit=50&before=<unix s>   newest first
    GET  /standby/incidents/{id}                                  one, with its timeline
    POST /standby/incidents            {"component", "title", "severity"?, "message"?}
    POST /standby/incidents/{id}/update   {"message", "status"?}
    POST /standby/incidents/{id}/ack      {"by"?}
    POST /standby/incidents/{id}/resolve  {"message"?}
    POST /standby/incidents/{id}/publish  {"by"?}   put it on the public status page now
    GET  /standby/incidents/{id}/report?format=markdown|html|json   its post-outage report
    GET  /standby/status               targets (breaker, signals, judgement), providers'
                                       official state, open incidents

Bodies are JSON objects of at most 64 KiB; a wrong one is a 400 in OpenAI's error shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from standby.errors import JournalUnavailable
from standby.incidents.manager import IncidentManager, NotFound
from standby.journal.incident_store import IncidentStore
from standby.plan.model import Plan

_BODY_LIMIT = 64 * 1024
_STATUSES = ("investigating", "identified", "monitoring", "resolved")
_SEVERITIES = ("major", "minor")


async def _json(request: Request) -> dict[str, Any]:
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > _BODY_LIMIT:
            raise HTTPException(413, f"The body is larger than {_BODY_LIMIT} bytes.")
    try:
        found = orjson.loads(data) if data else {}
    except orjson.JSONDecodeError:
        raise HTTPException(400, "The body is not valid JSON.") from None
    if not isinstance(found, dict):
        raise HTTPException(400, "The body must be a JSON object.")
    return found


def _text(body: dict[str, Any], name: str, *, required: bool = False, limit: int = 4000) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise HTTPException(400, f"'{name}' must be a string.")
    if required and not value.strip():
        raise HTTPException(400, f"'{name}' is required.")
    if len(value) > limit:
        raise HTTPException(400, f"'{name}' is longer than {limit} characters.")
    return value.strip()


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise HTTPException(400, f"'{name}' must be one of {', '.join(allowed)}.")
    return str(value)


def incidents_routes(
    manager: IncidentManager,
    store: IncidentStore | None,
    status: Callable[[], dict[str, Any]],
    *,
    authorise: Callable[[Request], None],
    plan: Callable[[], Plan] | None = None,
    flush: Callable[[], Awaitable[None]] | None = None,
) -> list[Route]:
    """``plan``: the plan being served (reports need its routes and prices); ``flush``:
    brings the journal's database up to date (a report read right after the outage
    counts its last requests)."""

    async def listing(request: Request) -> Response:
        authorise(request)
        open_only = request.query_params.get("open", "").lower() in ("1", "true", "yes")
        try:
            limit = max(1, min(int(request.query_params.get("limit", "50")), 500))
            before_text = request.query_params.get("before")
            before = float(before_text) if before_text else None
        except ValueError:
            raise HTTPException(400, "'limit' and 'before' must be numbers.") from None
        if store is None:  # no journal: what this process knows
            rows = manager.open_incidents()[::-1]
        else:
            rows = await store.recent(open_only=open_only, limit=limit, before=before)
        return JSONResponse({"object": "list", "data": [row.as_dict(events=False) for row in rows]})

    async def one(request: Request) -> Response:
        authorise(request)
        incident_id = request.path_params["incident_id"]
        row = await store.get(incident_id) if store is not None else None
        if row is None:
            row = next((i for i in manager.open_incidents() if i.id == incident_id), None)
        if row is None:
            raise HTTPException(404, f"No incident {incident_id!r}.")
        found = row.as_dict()
        if store is not None and plan is not None:
            found["report_url"] = f"/standby/incidents/{incident_id}/report"
        return JSONResponse(found)

    async def report(request: Request) -> Response:
        authorise(request)
        if store is None or plan is None:
            raise HTTPException(404, "Reports need the journal (journal.enabled).")
        # imported on first use: the gateway's start-up needs none of it
        from standby.reports.build import ReportNotFound, incident_report
        from standby.reports.render import FORMATS, MEDIA_TYPES, render

        fmt = request.query_params.get("format", "markdown")
        if fmt not in FORMATS:
            raise HTTPException(400, f"'format' must be one of {', '.join(FORMATS)}.")
        if flush is not None:
            try:
                await flush()
            except JournalUnavailable as error:
                raise HTTPException(503, str(error)) from None
        try:
            built = await incident_report(store.engine, plan(), request.path_params["incident_id"])
        except ReportNotFound as error:
            raise HTTPException(404, error.message) from None
        return Response(render(built, fmt), media_type=MEDIA_TYPES[fmt])

    async def open_one(request: Request) -> Response:
        authorise(request)
        body = await _json(request)
        row = await manager.open(
            _text(body, "component", required=True, limit=200),
            _text(body, "title", required=True, limit=300),
            severity=_choice(body, "severity", _SEVERITIES) or "major",
            message=_text(body, "message"),
        )
        return JSONResponse(row.as_dict(), status_code=201)

    async def act(request: Request) -> Response:
        authorise(request)
        incident_id = request.path_params["incident_id"]
        action = request.path_params["action"]
        body = await _json(request)
        try:
            if action == "update":
                await manager.update(
                    incident_id,
                    _text(body, "message", required=True),
                    status=_choice(body, "status", _STATUSES),
                )
            elif action == "ack":
                await manager.acknowledge(incident_id, _text(body, "by", limit=200))
            elif action == "resolve":
                await manager.resolve(incident_id, _text(body, "message"))
            elif action == "publish":
                await manager.publish(incident_id, _text(body, "by", limit=200))
            else:
                raise HTTPException(404, f"Invalid URL (POST {request.url.path})")
        except NotFound:
            raise HTTPException(404, f"No incident {incident_id!r}.") from None
        row = await store.get(incident_id) if store is not None else None
        return JSONResponse(row.as_dict() if row is not None else {"id": incident_id})

    async def live_status(request: Request) -> Response:
        authorise(request)
        return JSONResponse(status())

    return [
        Route("/standby/incidents", listing, methods=["GET"]),
        Route("/standby/incidents", open_one, methods=["POST"]),
        Route("/standby/incidents/{incident_id}", one, methods=["GET"]),
        Route("/standby/incidents/{incident_id}/report", report, methods=["GET"]),
        Route("/standby/incidents/{incident_id}/{action}", act, methods=["POST"]),
        Route("/standby/status", live_status, methods=["GET"]),
    ]
