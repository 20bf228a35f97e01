"""Replicas starting together on an empty PostgreSQL journal: one migrates, the others
wait for it and find the schema there (without the lock, one of three failed on a
unique violation creating the same table)."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from standby.journal.migrate import migrate
from standby.journal.schema import VERSION_TABLE
from standby.journal.sql import SQLStore


async def test_three_replicas_migrating_one_new_database_at_once_all_succeed(
    pg_database: str,
) -> None:
    stores = [SQLStore.from_url(pg_database) for _ in range(3)]
    try:
        await asyncio.gather(*(migrate(store.engine) for store in stores))
        async with stores[0].engine.connect() as conn:
            versions = (await conn.execute(sa.text(f"SELECT * FROM {VERSION_TABLE}"))).all()
        assert len(versions) == 1
    finally:
        for store in stores:
            await store.close()
