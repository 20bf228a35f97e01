"""The admin view of the journal: ``GET /standby/journal`` lists requests, newest first.

Query parameters (all optional):

==========  ==========================================================================
``since``   received at or after: a duration ago (``24h``), unix seconds or ISO 8601
``until``   received before (same forms)
``state``   ``accepted``, ``completed``, ``failed``, ``interrupted``, ``deferred``,
            ``client_gone``
``route``   the public model name
``before``  a request id: the page after it (the previous answer's ``next``)
``limit``   rows per page, 1 to 500 (default 50)
``bodies``  ``false`` leaves out request, response and stream text (smaller pages)
==========  ==========================================================================

The answer is ``{"data": [rows…], "next": rid | null}``; each row has the shape of the
``jsonl`` export (``standby.ops.export.record``): times, route, models, provider,
state, attempts ``[target, outcome, seconds]``, usage, bodies.  Before reading, the
service's writer is flushed (briefly) so the view includes what was just answered.
The admin app puts these routes behind the plan's admin token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from standby.journal.store import JournalStore
from standby.ops.export import parse_when, record

__all__ = ["JournalReader", "journal_routes"]

log = logging.getLogger("standby.journal")

STATES = ("accepted", "completed", "failed", "interrupted", "deferred", "client_gone")
MAX_LIMIT = 500
FLUSH_WAIT = 2.0  # seconds; past that, show what the database has


class JournalReader(Protocol):
    """What the view needs of the journal service."""

    @property
    def store(self) -> JournalStore: ...

    def flush(self) -> Awaitable[Any]: ...


def journal_routes(
    service: JournalReader,
    *,
    authorise: Callable[[Request], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> list[Route]:
    """The journal's admin routes; ``authorise`` raises ``HTTPException(401)`` for a
    request without the admin token (the admin app passes its check)."""

    async def list_requests(request: Request) -> Response:
        if authorise is not None:
            authorise(request)
        query = _Query(request.query_params, clock())
        try:
            await asyncio.wait_for(service.flush(), FLUSH_WAIT)
        except Exception as exc:  # the database is away or slow: read what is there
            log.debug("journal view: flush skipped (%s)", type(exc).__name__)
        try:
            rows = await service.store.list_requests(
                since=query.since,
                until=query.until,
                state=query.state,
                route=query.route,
                before=query.before,
                limit=query.limit + 1,
            )
        except Exception as exc:
            log.warning("journal view: the database did not answer (%s)", type(exc).__name__)
            raise HTTPException(
                503,
                "The journal database is unreachable; the gateway "
                "keeps journaling to its write-ahead log.",
            ) from exc
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        data = [_row(record(row), query.bodies) for row in rows]
        body = {"data": data, "next": rows[-1].rid if more and rows else None}
        return Response(orjson.dumps(body), media_type="application/json")

    return [Route("/standby/journal", list_requests, methods=["GET"])]


def _row(data: dict[str, Any], bodies: bool) -> dict[str, Any]:
    if not bodies:
        for key in ("request", "response", "content_sent"):
            data.pop(key, None)
    return data


class _Query:
    """The validated query string; a bad value is a 400 naming the parameter."""

    def __init__(self, params: Any, now: float) -> None:
        self.since = _time(params, "since", now)
        self.until = _time(params, "until", now)
        self.state: str | None = params.get("state") or None
        if self.state is not None and self.state not in STATES:
            raise HTTPException(400, f"state must be one of {', '.join(STATES)}")
        self.route: str | None = params.get("route") or None
        self.before: str | None = params.get("before") or None
        raw = params.get("limit") or "50"
        try:
            self.limit = int(raw)
        except ValueError:
            raise HTTPException(400, f"limit must be a whole number, not {raw!r}") from None
        if not 1 <= self.limit <= MAX_LIMIT:
            raise HTTPException(400, f"limit must be between 1 and {MAX_LIMIT}")
        flag = (params.get("bodies") or "true").lower()
        if flag not in ("true", "false", "1", "0", "yes", "no"):
            raise HTTPException(400, "bodies must be true or false")
        self.bodies = flag in ("true", "1", "yes")


def _time(params: Any, name: str, now: float) -> float | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        return parse_when(raw, now)
    except ValueError as exc:
        raise HTTPException(400, f"{name}: {exc}") from None
