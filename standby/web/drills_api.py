"""The admin API of drills (admin token required).

    POST /standby/drills          {"target", "fault", "duration", "share"?}   start one
    GET  /standby/drills          every drill, this process's and those the journal kept
    GET  /standby/drills/{id}     one, with its verdict (and report, ``?report=true``)
    GET  /standby/drills/{id}/report?format=markdown|html|json   its report, once done
    POST /standby/drills/{id}/stop   end its fault now

``duration`` is seconds or a duration ("30s", "5m").  A wrong body is a 400 in OpenAI's
error shape.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from standby.drills.runner import Drill, DrillRunner
from standby.errors import InvalidRequest
from standby.plan.values import parse_duration
from standby.web.incidents_api import _json


def drills_routes(drills: DrillRunner, *, authorise: Callable[[Request], None]) -> list[Route]:
    def found(request: Request) -> Drill:
        """The drill of the path, run by this process; 404 otherwise."""
        drill = drills.drills.get(request.path_params["drill_id"])
        if drill is None:
            raise HTTPException(404, f"No drill {request.path_params['drill_id']!r}.")
        return drill

    async def start(request: Request) -> Response:
        authorise(request)
        body = await _json(request)
        target, fault = body.get("target"), body.get("fault")
        if not isinstance(target, str) or not isinstance(fault, str):
            raise HTTPException(400, "'target' and 'fault' are required strings.")
        try:
            duration = parse_duration(body.get("duration"))
        except ValueError:
            raise HTTPException(400, "'duration' must be seconds or a duration like 30s.") from None
        share = body.get("share", 1.0)
        if not isinstance(share, int | float) or isinstance(share, bool):
            raise HTTPException(400, "'share' must be a number.")
        try:
            drill = drills.start(target, fault, duration, float(share))
        except InvalidRequest as error:
            raise HTTPException(400, error.message) from None
        return JSONResponse(drill.as_dict(), status_code=201)

    async def listing(request: Request) -> Response:
        """This process's drills and those the journal kept (of earlier runs too)."""
        authorise(request)
        by_id = {d.id: d.as_dict() for d in drills.drills.values()}
        store = drills.context.store if drills.context is not None else None
        if store is not None:
            for kept in await store.recent(limit=100):
                by_id.setdefault(kept["id"], kept)
        ordered = sorted(by_id.values(), key=lambda d: d["started_at"], reverse=True)
        return JSONResponse({"object": "list", "data": ordered})

    async def one(request: Request) -> Response:
        authorise(request)
        drill = found(request)
        with_report = request.query_params.get("report", "").lower() in ("1", "true", "yes")
        return JSONResponse(drill.as_dict(report=with_report))

    async def report(request: Request) -> Response:
        authorise(request)
        from standby.reports.model import report_from_dict
        from standby.reports.render import FORMATS, MEDIA_TYPES, render

        fmt = request.query_params.get("format", "markdown")
        if fmt not in FORMATS:
            raise HTTPException(400, f"'format' must be one of {', '.join(FORMATS)}.")
        drill_id = request.path_params["drill_id"]
        drill = drills.drills.get(drill_id)
        if drill is not None:
            if drill.report is None:
                raise HTTPException(409, f"The drill is {drill.state}: no report yet.")
            return Response(render(drill.report, fmt), media_type=MEDIA_TYPES[fmt])
        store = drills.context.store if drills.context is not None else None
        kept = await store.report(drill_id) if store is not None else None
        if kept is None:
            raise HTTPException(404, f"No drill {drill_id!r} with a report.")
        return Response(render(report_from_dict(kept), fmt), media_type=MEDIA_TYPES[fmt])

    async def stop(request: Request) -> Response:
        authorise(request)
        drill = found(request)
        drills.stop(drill.id)
        return JSONResponse(drill.as_dict())

    return [
        Route("/standby/drills", start, methods=["POST"]),
        Route("/standby/drills", listing, methods=["GET"]),
        Route("/standby/drills/{drill_id}", one, methods=["GET"]),
        Route("/standby/drills/{drill_id}/report", report, methods=["GET"]),
        Route("/standby/drills/{drill_id}/stop", stop, methods=["POST"]),
    ]
