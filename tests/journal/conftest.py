"""Journal fixtures: a real SQLite file and a real PostgreSQL database for every test.

``store_url`` runs a test on both: SQLite in the test's temporary directory, PostgreSQL
in a ``standby_test_<random>`` database created for the test module and dropped after
it (the server is ``STANDBY_TEST_PG``, default ``postgresql://postgres@127.0.0.1/test``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from standby.journal.journal import Journal
from standby.journal.migrate import migrate
from standby.journal.schema import journal_cursor, requests
from standby.journal.sql import SQLStore
from standby.journal.wal import WriteAheadLog
from standby.journal.writer import JournalWriter

PG_SERVER = os.environ.get("STANDBY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


async def _pg_admin(statement: str) -> None:
    url = make_url(PG_SERVER)
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
        timeout=5,
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    name = f"standby_test_{secrets.token_hex(4)}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"no PostgreSQL at {PG_SERVER}: {exc}")
    yield make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'journal.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SQLStore]:
    store = SQLStore.from_url(store_url)
    await migrate(store.engine)
    async with store.engine.begin() as conn:  # the PostgreSQL database is per module
        await conn.execute(sa.delete(requests))
        await conn.execute(sa.delete(journal_cursor))
    yield store
    await store.close()


@dataclass
class Rig:
    """A write-ahead log, the hot-path journal over it, the store, and writers on them."""

    wal: WriteAheadLog
    journal: Journal
    store: SQLStore
    wal_id: str
    writers: list[JournalWriter] = field(default_factory=list)

    def writer(self, **options: Any) -> JournalWriter:
        options.setdefault("backoff", (0.01, 0.05))
        writer = JournalWriter(self.wal, self.store, wal_id=self.wal_id, **options)
        self.writers.append(writer)
        return writer

    def request(
        self,
        rid: str,
        *,
        text: Sequence[str] = (),
        finish: bool = True,
        metadata: dict[str, str] | None = None,
        store: bool = True,
        model: str = "gpt-4o-mini",
    ) -> None:
        """Journal one chat request: accepted, its stream text, and (maybe) its answer."""
        body = b'{"model":"%s","messages":[{"role":"user","content":"hi"}]}' % model.encode()
        self.journal.accepted(
            rid,
            endpoint="chat",
            route=model,
            model=model,
            stream=bool(text),
            raw_body=body,
            metadata=metadata,
            store=store,
        )
        for part in text:
            self.journal.delta(rid, part)
        if finish:
            self.journal.completed(
                rid,
                completion_id=f"chatcmpl-{rid}",
                provider="backup",
                model=f"{model}-b",
                response={
                    "id": f"chatcmpl-{rid}",
                    "object": "chat.completion",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": "".join(text)}}
                    ],
                },
                usage={"total_tokens": 3},
                attempts=[("primary/m", "server_error", 0.1), ("backup/m", "ok", 0.2)],
            )


@pytest.fixture
async def rig(store: SQLStore, tmp_path: Path) -> AsyncIterator[Rig]:
    wal = WriteAheadLog(tmp_path / "wal")
    rig = Rig(wal, Journal(wal), store, wal_id="w" + secrets.token_hex(4))
    yield rig
    for writer in rig.writers:
        await writer.stop(timeout=0)
    wal.close()


async def rows(store: SQLStore) -> list[dict[str, Any]]:
    """Every request row, by request id."""
    async with store.engine.connect() as conn:
        result = await conn.execute(sa.select(requests).order_by(requests.c.rid))
        return [dict(row._mapping) for row in result]
