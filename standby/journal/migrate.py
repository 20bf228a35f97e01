"""Create or upgrade the journal's tables with alembic, from code (no alembic.ini).

Several replicas may start at once on one PostgreSQL database: the upgrade runs under a
transaction-scoped advisory lock, so one migrates and the others find the work done.

The migration scripts live in ``standby/journal/migrations``; the applied revision is
kept in ``journal_alembic_version`` so the journal can share a database with an
application that uses alembic itself.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

SCRIPTS = Path(__file__).with_name("migrations")
# PostgreSQL advisory lock key of the journal's migrations ("stby" in ASCII): replicas
# that start together on an empty database take turns instead of racing to create the
# same tables (measured: one of three failed with a unique violation on pg_type)
MIGRATION_LOCK = 0x73746279


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic configuration for the journal; ``connection`` is the one to migrate."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the journal schema to the newest revision (a no-op when it is there)."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # held until this transaction ends
            await conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        await conn.run_sync(_upgrade)
