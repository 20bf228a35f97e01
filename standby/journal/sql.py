"""The journal's database: SQLAlchemy Core over SQLite (aiosqlite) or PostgreSQL (asyncpg).

``SQLStore.write`` turns a batch of write-ahead-log events (folded by
``standby.journal.batch``) into at most one statement per kind, in one transaction with
the log position they reach (``journal_cursor``).  The cursor moves by compare-and-set
from the position the batch starts at, so a batch is applied exactly once even if two
writers, or a cancelled one and its successor, race.
The read side (``JournalStore``) lives in ``standby.journal.queries``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from standby.journal import events as ev
from standby.journal.batch import Batch, fold
from standby.journal.queries import StoreQueries
from standby.journal.schema import journal_cursor, requests
from standby.journal.wal import Position

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}
_PRUNE_CHUNK = 5000  # rows per DELETE: keeps SQLite's single write lock short


def open_engine(url: str, *, busy_timeout: float = 5.0) -> AsyncEngine:
    """An async engine for a plain URL (``sqlite:///path``, ``postgresql://user@host/db``).

    SQLite runs in WAL mode with ``synchronous=NORMAL`` (durable against a crash of the
    process; the write-ahead log covers the rest) and waits ``busy_timeout`` seconds for
    a lock instead of failing at once.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=_DRIVERS[parsed.drivername])
    elif backend not in ("sqlite", "postgresql"):
        raise ValueError(
            f"journal url: unsupported database {backend!r} "
            "(use sqlite:///path or postgresql://user@host/db)"
        )
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(parsed)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(busy_timeout))
        return engine
    # pre-ping: after a PostgreSQL restart the pooled connections are dead; find out
    # before a query does.  Bounded connect and command times keep an unreachable
    # server from hanging the writer (it backs off and retries instead).
    return create_async_engine(
        parsed, pool_pre_ping=True, connect_args={"timeout": 5, "command_timeout": 60}
    )


def _sqlite_pragmas(busy_timeout: float) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    return on_connect


class SQLStore(StoreQueries):
    """The journal database: batch application from the log, and the ``JournalStore``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._statements = _Statements(engine.dialect.name)

    @classmethod
    def from_url(cls, url: str, *, busy_timeout: float = 5.0) -> SQLStore:
        return cls(open_engine(url, busy_timeout=busy_timeout))

    async def close(self) -> None:
        await self.engine.dispose()

    def explain(self, exc: BaseException) -> str:
        """A one-line description of a database error, safe to log: no SQL, no
        parameters (request bodies), no password."""
        if isinstance(exc, DBAPIError) and exc.orig is not None:
            text = f"{type(exc.orig).__name__}: {exc.orig}"
        else:
            text = f"{type(exc).__name__}: {exc}"
        text = text.split("\n", 1)[0].split("[SQL:", 1)[0].strip()
        password = self.engine.url.password
        if password:
            text = text.replace(str(password), "***")
        return text[:300]

    def refused(self, exc: BaseException) -> bool:
        """Whether the driver or the database rejected the data (rather than being out
        of reach): the writer then drops the offending event instead of retrying."""
        if isinstance(exc, DataError | IntegrityError | ValueError | ArithmeticError | TypeError):
            return True  # the plain ones: the SQLite driver refusing a value as it binds it
        if isinstance(exc, DBAPIError):
            # asyncpg checks arguments client-side and SQLAlchemy reports that as a bare
            # DBAPIError; the driver's own exception is chained behind it
            cause = getattr(exc.orig, "__cause__", None)
            return isinstance(cause, ValueError | ArithmeticError) or (
                type(cause).__name__ == "DataError"
            )
        return isinstance(exc, StatementError)

    async def cursor(self, wal_id: str) -> Position | None:
        """How far the log ``wal_id`` has been applied (None: never)."""
        query = sa.select(journal_cursor.c.segment, journal_cursor.c.offset).where(
            journal_cursor.c.wal_id == wal_id
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else Position(int(row.segment), int(row.offset))

    async def apply(
        self,
        events: Sequence[dict[str, Any]],
        *,
        wal_id: str,
        start: Position | None = None,
        end: Position | None = None,
    ) -> bool:
        """Apply decoded log events in one transaction (see ``write``)."""
        return await self.write(fold(events, wal_id), wal_id=wal_id, start=start, end=end)

    async def write(
        self,
        batch: Batch,
        *,
        wal_id: str,
        start: Position | None = None,
        end: Position | None = None,
    ) -> bool:
        """Write a folded batch in one transaction; returns False if nothing was done.

        With ``end``, the cursor of ``wal_id`` moves from ``start`` to ``end`` in the same
        transaction; if it is not at ``start`` (another writer got there first) the
        batch is rolled back and False returned.  Without, every event kind but ``dlt``
        is idempotent on its own (an insert that finds its row does nothing).
        """
        statements = self._statements
        async with self.engine.begin() as conn:
            # the cursor first: on SQLite this takes the write lock before any row work
            if end is not None and not await statements.advance(conn, wal_id, start, end):
                await conn.rollback()
                return False
            await statements.write(conn, batch)
        return True

    async def interrupt_accepted(self, wal_id: str, *, before: float | None = None) -> int:
        """Mark ``wal_id``'s rows still ``accepted`` (received before ``before``) as
        interrupted; their ``content_sent`` is kept. Returns how many."""
        t = requests
        where = [t.c.wal_id == wal_id, t.c.state == "accepted"]
        if before is not None:
            where.append(t.c.received_at < before)
        async with self.engine.begin() as conn:
            result = await conn.execute(sa.update(t).where(*where).values(state=ev.INTERRUPTED))
        return int(result.rowcount)

    async def prune(self, older_than: float) -> int:
        """Delete requests received before ``older_than``, a chunk per transaction.

        Deferred requests still waiting are kept: their deadline is their own."""
        t, total = requests, 0
        while True:
            chunk = (
                sa.select(t.c.rid)
                .where(t.c.received_at < older_than, t.c.state != ev.DEFERRED_STATE)
                .limit(_PRUNE_CHUNK)
            )
            async with self.engine.begin() as conn:
                result = await conn.execute(sa.delete(t).where(t.c.rid.in_(chunk)))
            total += int(result.rowcount)
            if result.rowcount < _PRUNE_CHUNK:
                return total


class _Statements:
    """The write statements of one dialect, built once: constructing them per batch
    (``ON CONFLICT`` clauses, bind parameters) was most of a small batch's CPU time."""

    def __init__(self, dialect: str) -> None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        t, c = requests, journal_cursor.c
        move = (
            sa.update(journal_cursor)
            .where(c.wal_id == sa.bindparam("b_wal"))
            .values(
                segment=sa.bindparam("b_segment"),
                offset=sa.bindparam("b_offset"),
                updated_at=sa.bindparam("b_now"),
            )
        )
        self.move_cursor = move
        self.move_cursor_from = move.where(
            c.segment == sa.bindparam("b_from_segment"), c.offset == sa.bindparam("b_from_offset")
        )
        self.first_cursor = insert(journal_cursor).on_conflict_do_nothing()
        self.insert = insert(t).on_conflict_do_nothing(index_elements=["rid"])
        self.append = (
            sa.update(t)
            .where(t.c.rid == sa.bindparam("b_rid"))
            .values(content_sent=sa.func.coalesce(t.c.content_sent, "") + sa.bindparam("b_text"))
        )
        upsert = insert(t)
        # a final event whose accepted row is gone (pruned, or never applied) still
        # leaves a row: the minimal one this insert carries
        self.finish = upsert.on_conflict_do_update(
            index_elements=["rid"],
            set_={
                name: upsert.excluded[name]
                for name in (
                    "state",
                    "status",
                    "completion_id",
                    "provider",
                    "model",
                    "finished_at",
                    "response_json",
                    "usage_json",
                    "attempts_json",
                )
            }
            # only a client_gone ending carries the text: it replaces the deltas' sum
            | {"content_sent": sa.func.coalesce(upsert.excluded.content_sent, t.c.content_sent)},
        )
        self.defer = (
            sa.update(t)
            .where(t.c.rid == sa.bindparam("b_rid"))
            .values(
                state=ev.DEFERRED_STATE,
                defer_until=sa.bindparam("b_until"),
                callback=sa.bindparam("b_callback"),
            )
        )
        self.metadata = (
            sa.update(t)
            .where(t.c.completion_id == sa.bindparam("b_cid"))
            .values(metadata_json=sa.bindparam("b_metadata"))
        )
        self.delete = (
            sa.update(t)
            .where(t.c.completion_id.in_(sa.bindparam("b_cids", expanding=True)))
            .values(deleted=True)
        )

    async def advance(
        self, conn: AsyncConnection, wal_id: str, start: Position | None, end: Position
    ) -> bool:
        to = {
            "b_wal": wal_id,
            "b_segment": end.segment,
            "b_offset": end.offset,
            "b_now": time.time(),
        }
        if start is None:
            moved = await conn.execute(self.move_cursor, to)
        else:
            moved = await conn.execute(
                self.move_cursor_from,
                {**to, "b_from_segment": start.segment, "b_from_offset": start.offset},
            )
        if moved.rowcount == 1:
            return True
        # no cursor row yet (a new log), or someone else's: the insert tells which
        first = await conn.execute(
            self.first_cursor,
            {
                "wal_id": wal_id,
                "segment": end.segment,
                "offset": end.offset,
                "updated_at": to["b_now"],
            },
        )
        return bool(first.rowcount == 1)

    async def write(self, conn: AsyncConnection, batch: Batch) -> None:
        """Rows in a fixed order that respects the log's: inserts, stream text, endings,
        deferrals, then metadata and deletions (which find rows by completion id)."""
        if batch.inserts:
            await conn.execute(self.insert, list(batch.inserts.values()))
        if batch.deltas:
            await conn.execute(
                self.append,
                [{"b_rid": rid, "b_text": "".join(parts)} for rid, parts in batch.deltas.items()],
            )
        if batch.finals:
            await conn.execute(self.finish, list(batch.finals.values()))
        if batch.deferrals:
            await conn.execute(self.defer, list(batch.deferrals.values()))
        if batch.metadata:
            await conn.execute(
                self.metadata,
                [{"b_cid": cid, "b_metadata": text} for cid, text in batch.metadata.items()],
            )
        if batch.deletes:
            await conn.execute(self.delete, {"b_cids": sorted(batch.deletes)})
