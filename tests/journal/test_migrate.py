"""The alembic migration creates exactly the tables of ``schema.metadata``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from standby.journal.migrate import migrate
from standby.journal.schema import (
    SEARCH_COLUMN,
    SEARCH_INDEXES,
    SEARCH_TABLE,
    VERSION_TABLE,
    metadata,
)
from standby.journal.sql import SQLStore


def _portable(_obj: Any, name: str | None, kind: str, _reflected: bool, _other: Any) -> bool:
    """Whether an object belongs to the portable schema: the chat's full-text search is
    made per database by migration 0006, outside the metadata (schema.SEARCH_*)."""
    if kind == "table":
        return not (name or "").startswith(SEARCH_TABLE)
    if kind == "column":
        return name != SEARCH_COLUMN
    return kind != "index" or name not in SEARCH_INDEXES


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "version_table": VERSION_TABLE,
            "compare_type": True,
            "compare_server_default": True,
            "include_object": _portable,
        },
    )
    return list(compare_metadata(context, metadata))


def _tables(connection: Connection) -> tuple[list[str], str | None]:
    revision = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    names = sa.inspect(connection).get_table_names()
    return sorted(name for name in names if not name.startswith(SEARCH_TABLE)), revision


async def test_the_migration_yields_the_schema_and_runs_once(store: SQLStore) -> None:
    # the fixture has migrated already; a second run must change nothing
    await migrate(store.engine)
    async with store.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
        tables, revision = await conn.run_sync(_tables)
    assert tables == [
        "chat_messages",
        "conversations",
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
    assert revision == "0007"
