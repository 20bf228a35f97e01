"""Reading the status page's hourly traffic figures (``journal.traffic`` writes them).

A few thousand rows for 90 days of a route, whatever the number of requests: one short
query on the journal's async engine.
"""

from __future__ import annotations

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
