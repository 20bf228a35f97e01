"""Incidents and their timelines in the journal's database (SQLite or PostgreSQL).

Written rarely (an incident's transitions, its notifications), read by the admin API,
the CLI and the status page; so plain SQLAlchemy Core on the async engine, one short
transaction per call.  ``standby.incidents`` decides; this only stores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from standby.journal.schema import incident_events, incidents

OPEN_STATES = ("investigating", "identified", "monitoring")


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    at: float
    kind: str
    message: str
    data: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "kind": self.kind, "message": self.message, "data": self.data}


@dataclass(frozen=True, slots=True)
class IncidentRow:
    id: str
    component: str
    title: str
    status: str
    severity: str
    source: str
    opened_at: float
    updated_at: float
    first_failure_at: float | None = None
    acknowledged_at: float | None = None
    resolved_at: float | None = None
    muted: bool = False
    official: dict[str, Any] | None = None
    events: tuple[IncidentEvent, ...] = field(default_factory=tuple)

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATES

    def as_dict(self, *, events: bool = True) -> dict[str, Any]:
        found: dict[str, Any] = {
            "id": self.id,
            "component": self.component,
            "title": self.title,
            "status": self.status,
            "severity": self.severity,
            "source": self.source,
            "opened_at": self.opened_at,
            "first_failure_at": self.first_failure_at,
            "acknowledged_at": self.acknowledged_at,
            "resolved_at": self.resolved_at,
            "updated_at": self.updated_at,
            "muted": self.muted,
            "official": self.official,
        }
        if events:
            found["timeline"] = [event.as_dict() for event in self.events]
        return found


def _dump(value: dict[str, Any] | None) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _load(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    value = orjson.loads(text)
    return value if isinstance(value, dict) else None


def _row(row: sa.Row[Any], events: tuple[IncidentEvent, ...] = ()) -> IncidentRow:
    return IncidentRow(
        id=row.id,
        component=row.component,
        title=row.title,
        status=row.status,
        severity=row.severity,
        source=row.source,
        opened_at=row.opened_at,
        updated_at=row.updated_at,
        first_failure_at=row.first_failure_at,
        acknowledged_at=row.acknowledged_at,
        resolved_at=row.resolved_at,
        muted=bool(row.muted),
        official=_load(row.official_json),
        events=events,
    )


class IncidentStore:
    """Incidents over the journal's async engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, incident: IncidentRow) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                incidents.insert().values(
                    id=incident.id,
                    component=incident.component,
                    title=incident.title,
                    status=incident.status,
                    severity=incident.severity,
                    source=incident.source,
                    opened_at=incident.opened_at,
                    first_failure_at=incident.first_failure_at,
                    acknowledged_at=incident.acknowledged_at,
                    resolved_at=incident.resolved_at,
                    muted=incident.muted,
                    official_json=_dump(incident.official),
                    updated_at=incident.updated_at,
                )
            )
            for event in incident.events:
                await conn.execute(self._event(incident.id, event))

    async def update(self, incident_id: str, at: float, **values: Any) -> None:
        """Set columns of an incident (``official`` is stored as JSON)."""
        if "official" in values:
            values["official_json"] = _dump(values.pop("official"))
        async with self.engine.begin() as conn:
            await conn.execute(
                incidents.update()
                .where(incidents.c.id == incident_id)
                .values(updated_at=at, **values)
            )

    async def add_event(self, incident_id: str, event: IncidentEvent) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(self._event(incident_id, event))
            await conn.execute(
                incidents.update().where(incidents.c.id == incident_id).values(updated_at=event.at)
            )

    @staticmethod
    def _event(incident_id: str, event: IncidentEvent) -> sa.Insert:
        return incident_events.insert().values(
            incident_id=incident_id,
            at=event.at,
            kind=event.kind,
            message=event.message,
            data_json=_dump(event.data),
        )

    async def get(self, incident_id: str) -> IncidentRow | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(incidents).where(incidents.c.id == incident_id))
            ).first()
            if row is None:
                return None
            found = await conn.execute(
                sa.select(incident_events)
                .where(incident_events.c.incident_id == incident_id)
                .order_by(incident_events.c.at, incident_events.c.id)
            )
            events = tuple(
                IncidentEvent(e.at, e.kind, e.message, _load(e.data_json)) for e in found
            )
        return _row(row, events)

    async def recent(
        self, *, open_only: bool = False, limit: int = 50, before: float | None = None
    ) -> list[IncidentRow]:
        """Newest first; ``before``: opened before that time (the next page)."""
        query = sa.select(incidents).order_by(incidents.c.opened_at.desc()).limit(limit)
        if open_only:
            query = query.where(incidents.c.status.in_(OPEN_STATES))
        if before is not None:
            query = query.where(incidents.c.opened_at < before)
        async with self.engine.connect() as conn:
            return [_row(row) for row in await conn.execute(query)]

    async def public(self, *, since: float, limit: int = 500) -> list[IncidentRow]:
        """The incidents customers may hear of (not a target's: failing over absorbed
        those) opened since ``since`` or still open, newest first, with their timelines
        — two queries, however many there are."""
        query = (
            sa.select(incidents)
            .where(~incidents.c.component.startswith("target:"))
            .where(sa.or_(incidents.c.opened_at >= since, incidents.c.status.in_(OPEN_STATES)))
            .order_by(incidents.c.opened_at.desc())
            .limit(limit)
        )
        return await self._with_timelines(query)

    async def open_marks(self) -> list[tuple[str, float]]:
        """Each open incident's id and last change: one small query, for a reader in
        another process to learn whether anything changed (an event, a status, a new
        or resolved incident) before reading the incidents again."""
        query = (
            sa.select(incidents.c.id, incidents.c.updated_at)
            .where(incidents.c.status.in_(OPEN_STATES))
            .order_by(incidents.c.id)
        )
        async with self.engine.connect() as conn:
            return [(row.id, row.updated_at) for row in await conn.execute(query)]

    async def open_with_timelines(self) -> list[IncidentRow]:
        """Every open incident with its timeline, oldest first (as the manager holds them)."""
        query = (
            sa.select(incidents)
            .where(incidents.c.status.in_(OPEN_STATES))
            .order_by(incidents.c.opened_at)
        )
        return await self._with_timelines(query)

    async def _with_timelines(self, query: sa.Select[Any]) -> list[IncidentRow]:
        async with self.engine.connect() as conn:
            rows = list(await conn.execute(query))
            if not rows:
                return []
            found = await conn.execute(
                sa.select(incident_events)
                .where(incident_events.c.incident_id.in_([row.id for row in rows]))
                .order_by(incident_events.c.at, incident_events.c.id)
            )
            timelines: dict[str, list[IncidentEvent]] = {}
            for e in found:
                timelines.setdefault(e.incident_id, []).append(
                    IncidentEvent(e.at, e.kind, e.message, _load(e.data_json))
                )
        return [_row(row, tuple(timelines.get(row.id, ()))) for row in rows]

    async def open_ones(self) -> list[IncidentRow]:
        """Every incident not resolved yet (what a restarted gateway picks up again)."""
        return await self.recent(open_only=True, limit=10_000)
