"""The journal's part of ``standby plan check --readiness``: read where the plan's
journal is, when it is there (a plan never served has none, and that is no error)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from standby.journal.service import journal_url
from standby.journal.sql import open_engine
from standby.plan.model import Plan
from standby.reports.readiness import Finding, exercise_findings, plan_findings


def findings(plan: Plan, path: str, days: float) -> list[Finding]:
    found = plan_findings(plan)
    url = journal_url(plan.journal, Path(path).resolve().parent)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not (
        parsed.database and os.path.isfile(parsed.database)
    ):
        return found  # never served: nothing to say about exercise

    async def read() -> list[Finding]:
        engine = open_engine(url)
        try:
            return await exercise_findings(engine, plan, days=days)
        finally:
            await engine.dispose()

    try:
        found += asyncio.run(read())
    except Exception as exc:  # an unreachable or empty journal: the plan's part stands
        found.append(Finding("journal", f"could not read the journal ({type(exc).__name__})"))
    return found
