"""Reads over a window of time of the journal's requests, for the reports and the
readiness check (``standby.reports``): they get plain rows and numbers, and the SQL over
the journal's tables stays in this package.

Every query here is a range of the ``received_at`` index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from standby.journal import events as ev
from standby.journal.schema import requests

# what a report needs of each request: no bodies
WINDOW_COLUMNS = (
    requests.c.rid,
    requests.c.received_at,
    requests.c.finished_at,
    requests.c.route,
    requests.c.client,
    requests.c.stream,
    requests.c.state,
    requests.c.status,
    requests.c.provider,
    requests.c.model,
    requests.c.usage_json,
    requests.c.attempts_json,
    requests.c.defer_until,
)


async def window_rows(
    engine: AsyncEngine, start: float, end: float, routes: Iterable[str] | None = None
) -> list[Any]:
    """The rows (``WINDOW_COLUMNS``) of the requests received in ``[start, end)``, of
    ``routes`` when given, oldest first."""
    query = (
        sa.select(*WINDOW_COLUMNS)
        .where(requests.c.received_at >= start, requests.c.received_at < end)
        .order_by(requests.c.received_at)
    )
    if routes is not None:
        query = query.where(requests.c.route.in_(sorted(routes)))
    async with engine.connect() as conn:
        return list(await conn.execute(query))


async def answered_seconds(
    engine: AsyncEngine, spans: Sequence[tuple[float, float]], routes: Iterable[str] | None = None
) -> list[float]:
    """Seconds from receipt to the answer's end of the requests answered in ``spans``
    (deferred ones left out).  One query per span, each a range of the ``received_at``
    index: one query with their ``OR`` let SQLite pick the (state, received_at) index
    and read every answered request of the journal."""
    elapsed = requests.c.finished_at - requests.c.received_at
    found: list[float] = []
    chosen = sorted(routes) if routes is not None else None
    async with engine.connect() as conn:
        for start, end in spans:
            query = (
                sa.select(elapsed)
                .where(requests.c.state == ev.COMPLETED)
                .where(requests.c.received_at >= start, requests.c.received_at < end)
                .where(requests.c.defer_until.is_(None), requests.c.finished_at.is_not(None))
            )
            if chosen is not None:
                query = query.where(requests.c.route.in_(chosen))
            found += [float(value) for (value,) in await conn.execute(query)]
    return found


async def answered_by_target(engine: AsyncEngine, since: float) -> dict[str, int]:
    """How many requests each ``provider/model`` answered since ``since``."""
    query = (
        sa.select(requests.c.provider, requests.c.model, sa.func.count())
        .where(requests.c.received_at >= since, requests.c.state == ev.COMPLETED)
        .group_by(requests.c.provider, requests.c.model)
    )
    async with engine.connect() as conn:
        return {f"{p}/{m}": int(n) for p, m, n in await conn.execute(query)}
