"""Finished drills in the journal's database: what each was, its verdict and its report,
so that they outlive the process that ran them (``standby drill list``)."""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from standby.journal.schema import drill_runs


class DrillStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def save(
        self, summary: dict[str, Any], report: dict[str, Any] | None, *, scheduled: bool
    ) -> None:
        """Keep a finished drill (``summary``: its ``as_dict()``); once per drill."""
        verdict = summary.get("verdict") or {}
        async with self.engine.begin() as conn:
            await conn.execute(
                drill_runs.insert().values(
                    id=summary["id"],
                    target=summary["target"],
                    fault=summary["fault"],
                    share=summary["share"],
                    duration=summary["duration"],
                    scheduled=scheduled,
                    started_at=summary["started_at"],
                    ended_at=summary["ends_at"],
                    state=summary["state"],
                    passed=verdict.get("passed"),
                    summary_json=orjson.dumps(summary).decode(),
                    report_json=None if report is None else orjson.dumps(report).decode(),
                )
            )

    async def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest drills' summaries, newest first."""
        query = (
            sa.select(drill_runs.c.summary_json, drill_runs.c.scheduled)
            .order_by(drill_runs.c.started_at.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [
                {**orjson.loads(row.summary_json), "scheduled": bool(row.scheduled)}
                for row in await conn.execute(query)
            ]

    async def report(self, drill_id: str) -> dict[str, Any] | None:
        query = sa.select(drill_runs.c.report_json).where(drill_runs.c.id == drill_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None or row.report_json is None:
            return None
        found: dict[str, Any] = orjson.loads(row.report_json)
        return found
