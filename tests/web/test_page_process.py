"""The page's own process reads the open incidents from the journal's database: read
again only when a small query says one changed, and kept when the database is away."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from standby.journal.incident_store import IncidentEvent, IncidentRow, IncidentStore
from standby.journal.migrate import migrate
from standby.journal.sql import SQLStore
from standby.web.page_process import OpenIncidents

OPENED = IncidentRow(
    id="inc_1",
    component="route:chat",
    title="Chat unavailable",
    status="investigating",
    severity="major",
    source="detector",
    opened_at=100.0,
    updated_at=100.0,
    events=(IncidentEvent(100.0, "opened", "detected"),),
)


async def test_the_open_incidents_are_read_again_only_when_one_changed(tmp_path: Path) -> None:
    store = SQLStore.from_url(f"sqlite:///{tmp_path / 'journal.db'}")
    await migrate(store.engine)
    incidents = IncidentStore(store.engine)
    reader = OpenIncidents(incidents)
    try:
        assert await reader.refresh() is True and reader() == []  # the first look
        assert await reader.refresh() is False
        await incidents.create(OPENED)
        assert await reader.refresh() is True
        assert [(i.id, len(i.events)) for i in reader()] == [("inc_1", 1)]
        assert await reader.refresh() is False  # nothing changed: one small query
        await incidents.add_event("inc_1", IncidentEvent(101.0, "published", "by hand"))
        assert await reader.refresh() is True
        assert [e.kind for e in reader()[0].events] == ["opened", "published"]
        await incidents.create(replace(OPENED, id="inc_2", opened_at=50.0, updated_at=50.0))
        assert await reader.refresh() is True
        assert [i.id for i in reader()] == ["inc_2", "inc_1"]  # oldest first, as the manager
        await incidents.update("inc_1", 102.0, status="resolved", resolved_at=102.0)
        assert await reader.refresh() is True
        assert [i.id for i in reader()] == ["inc_2"]
    finally:
        await store.engine.dispose()


async def test_the_database_away_the_last_incidents_read_stay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal.db"
    store = SQLStore.from_url(f"sqlite:///{path}")
    await migrate(store.engine)
    incidents = IncidentStore(store.engine)
    await incidents.create(OPENED)
    reader = OpenIncidents(incidents)
    assert await reader.refresh() is True
    await store.engine.dispose()
    path.unlink()
    path.mkdir()  # a database that cannot be opened any more
    try:
        assert await reader.refresh() is False
        assert await reader.refresh() is False
        assert [i.id for i in reader()] == ["inc_1"] and reader.failing
        said = [r.message for r in caplog.records if "cannot read the open incidents" in r.message]
        assert len(said) == 1  # said once, not every second
    finally:
        await store.engine.dispose()
