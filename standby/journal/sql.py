"""The journal's database: SQLAlchemy Core over SQLite (aiosqlite) or PostgreSQL (asyncpg).

The read side (``JournalStore``, in ``standby.journal.queries``), migrations, recovery
and retention use the async engine on the event loop.  Batches from the write-ahead log
are written by the writer's thread over a plain driver connection of their own
(``connect_writer``, ``standby.journal.drivers``): ``write`` turns a folded batch
(``standby.journal.batch``) into at most one statement per kind, in one transaction with
the log position it reaches (``journal_cursor``).  The cursor moves by compare-and-set
from the position the batch starts at, so a batch is applied exactly once even if two
writers, or a stopped one and its successor, race.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from standby.journal import drivers
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
# keys of an asyncpg URL's query that SQLAlchemy takes and asyncpg.connect() does not
_ENGINE_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func", "async_fallback")


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

    def __init__(self, engine: AsyncEngine, *, busy_timeout: float = 5.0) -> None:
        self.engine = engine
        self.busy_timeout = busy_timeout

    @classmethod
    def from_url(cls, url: str, *, busy_timeout: float = 5.0) -> SQLStore:
        return cls(open_engine(url, busy_timeout=busy_timeout), busy_timeout=busy_timeout)

    async def close(self) -> None:
        await self.engine.dispose()

    def writer_target(self) -> drivers.Target:
        """Where the follower process writes: this engine's database, said in plain
        JSON (it is sent to the process on a pipe, never on a command line)."""
        url = self.engine.url
        if url.get_backend_name() == "sqlite":
            if not url.database or url.database == ":memory:":
                raise ValueError("the journal needs a database file, not an in-memory one")
            path = Path(url.database).resolve()
            return {"kind": "sqlite", "path": str(path), "busy_timeout": self.busy_timeout}
        arguments: dict[str, Any] = url.translate_connect_args(username="user")
        arguments.update(url.query)
        for key in _ENGINE_ONLY:
            arguments.pop(key, None)
        if "port" in arguments:
            arguments["port"] = int(arguments["port"])
        return {"kind": "postgresql", "arguments": arguments}

    def explain(self, exc: BaseException) -> str:
        """A one-line description of a database error, safe to log: no SQL, no
        parameters (request bodies), no password."""
        if isinstance(exc, DBAPIError) and exc.orig is not None:
            exc = exc.orig
        text = f"{type(exc).__name__}: {exc}".split("[SQL:", 1)[0]
        return drivers.scrub(text, str(self.engine.url.password or ""))

    def refused(self, exc: BaseException) -> bool:
        """Whether the driver or the database rejected the data (rather than being out
        of reach): the follower then drops the offending event instead of retrying."""
        if isinstance(exc, DataError | IntegrityError) or drivers.refused(exc):
            return True
        if isinstance(exc, DBAPIError):
            # asyncpg checks arguments client-side and SQLAlchemy reports that as a bare
            # DBAPIError; the driver's own exception is chained behind it
            cause = getattr(exc.orig, "__cause__", None)
            return cause is not None and drivers.refused(cause)
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

        The follower process writes the same way (``standby.journal.drivers``); this is
        that write on a connection of its own, in a worker thread, for tools and tests.
        """

        def once() -> bool:
            conn = drivers.connect(self.writer_target())
            try:
                return conn.write(batch, wal_id=wal_id, start=start, end=end)
            finally:
                conn.close()

        return await asyncio.to_thread(once)

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
