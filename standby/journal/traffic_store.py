"""Reading the status page's hourly traffic figures (``journal.traffic`` writes them).

A few thousand rows for 90 days of a route, whatever the number of requests: one short
query on the journal's async engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from standby.journal.schema import traffic_hours


@dataclass(frozen=True, slots=True)
class HourFigures:
    route: str
    hour: int  # unix seconds at the hour's start (UTC)
    requests: int
    failed: int
    slow: int


class TrafficStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def hours(self, routes: list[str], *, since: float) -> list[HourFigures]:
        """The figures of ``routes`` from the hour holding ``since`` on, oldest first."""
        if not routes:
            return []
        start = int(since // 3600) * 3600
        query = (
            sa.select(traffic_hours)
            .where(traffic_hours.c.route.in_(routes))
            .where(traffic_hours.c.hour >= start)
            .order_by(traffic_hours.c.hour)
        )
        async with self.engine.connect() as conn:
            return [
                HourFigures(r.route, int(r.hour), int(r.requests), int(r.failed), int(r.slow))
                for r in await conn.execute(query)
            ]


@dataclass(frozen=True, slots=True)
class RouteSummary:
    """One route's figures, summed by the database: per UTC day (day start → requests,
    failed, slow), per uptime window (name → requests, failed + slow, maintenance hours
    left out), and the first hour with figures."""

    days: dict[float, tuple[int, int, int]]
    windows: dict[str, tuple[int, int]]
    first: float | None


async def summarise_routes(
    engine: AsyncEngine,
    routes: list[str],
    *,
    since: float,
    now: float,
    windows: Sequence[tuple[str, float]],
    maintenance: Sequence[tuple[float, float]],
) -> dict[str, RouteSummary]:
    """Each route's ``RouteSummary`` from ``since`` on: a handful of grouped queries that
    return a few rows per route and day, however many hours the table holds."""
    if not routes:
        return {}
    t = traffic_hours
    start = int(since // 3600) * 3600
    day = (t.c.hour - (t.c.hour % 86_400)).label("day")
    days_query = (
        sa.select(
            t.c.route,
            day,
            sa.func.sum(t.c.requests),
            sa.func.sum(t.c.failed),
            sa.func.sum(t.c.slow),
            sa.func.min(t.c.hour),
        )
        .where(t.c.route.in_(routes), t.c.hour >= start)
        .group_by(t.c.route, day)
    )
    counted = [t.c.route.in_(routes), t.c.hour <= now]
    for begin, end in maintenance:  # an hour touching a maintenance window is left out
        counted.append(sa.not_(sa.and_(t.c.hour < end, t.c.hour + 3600 > begin)))
    found: dict[str, RouteSummary] = {
        route: RouteSummary({}, {name: (0, 0) for name, _ in windows}, None) for route in routes
    }
    async with engine.connect() as conn:
        for route, day_start, requests, failed, slow, first in await conn.execute(days_query):
            summary = found[route]
            summary.days[float(day_start)] = (int(requests), int(failed), int(slow))
            if summary.first is None or first < summary.first:
                found[route] = RouteSummary(summary.days, summary.windows, float(first))
        for name, length in windows:
            query = (
                sa.select(t.c.route, sa.func.sum(t.c.requests), sa.func.sum(t.c.failed + t.c.slow))
                .where(*counted, t.c.hour + 3600 > now - length)
                .group_by(t.c.route)
            )
            for route, requests, bad in await conn.execute(query):
                found[route].windows[name] = (int(requests or 0), int(bad or 0))
    return found
