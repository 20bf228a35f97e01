"""The alembic migration creates exactly the tables of ``schema.metadata``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from standby.journal.migrate import migrate
from standby.journal.schema import VERSION_TABLE, metadata
from standby.journal.sql import SQLStore


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={"version_table": VERSION_TABLE, "compare_type": True, "compare_server_default": True},
    )
    return list(compare_metadata(context, metadata))


def _tables(connection: Connection) -> tuple[list[str], str | None]:
    revision = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    return sorted(sa.inspect(connection).get_table_names()), revision


async def test_the_migration_yields_the_schema_and_runs_once(store: SQLStore) -> None:
    # the fixture has migrated already; a second run must change nothing
    await migrate(store.engine)
    async with store.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
        tables, revision = await conn.run_sync(_tables)
    assert tables == [
        "drill_runs",
        "incident_events",
        "incidents",
        "journal_alembic_version",
        "journal_cursor",
        "requests",
        "subscribers",
        "subscription_deliveries",
        "traffic_hours",
    ]
    assert revision == "0005"
