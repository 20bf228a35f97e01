"""The follower's own database connection: plain driver calls, in the follower process.

The read side of the journal (``standby.journal.queries``) goes through SQLAlchemy's
async engine on the event loop.  The write side — one transaction per batch of the
write-ahead log, the only heavy user of the database — belongs to the follower process
(``standby.journal.follower``), which talks to the driver directly:

* SQLite through the standard library's ``sqlite3``.  ``BEGIN IMMEDIATE`` takes the
  write lock before any row work.  The database is opened read-write, never created
  (migrations create it), and reopened when the file at its path is not the one open
  (replaced by a restore, moved away): writing on into a file nobody reads would lose
  the rows while the cursor said they were safe.
* PostgreSQL through ``asyncpg`` (already a dependency) on an event loop of the
  process's own: one ``run_until_complete`` per batch.

Both databases accept the same statements (``INSERT … ON CONFLICT``), written once here
with each driver's placeholders.  A batch becomes at most one ``executemany`` per kind
(``standby.journal.batch``), fed in chunks with a ``pause()`` between them.

What to connect to is a ``Target``: plain JSON (the follower process receives it on its
standard input) made by ``SQLStore.writer_target()``.  Its ``factory``, when given, names
another ``module:function`` that opens the connection (tests use it).  This module
imports neither SQLAlchemy nor, until a PostgreSQL connection is opened, asyncpg: the
follower process starts in tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import re
import sqlite3
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol, TypeVar

from standby.journal import events as ev
from standby.journal import traffic
from standby.journal.batch import (
    ACCEPTED_COLUMNS,
    ENDING_COLUMNS,
    FINAL_COLUMNS,
    FINISHED_COLUMNS,
    Batch,
)
from standby.journal.wal import Position

_CHUNK = 100  # rows per executemany call: about half a millisecond of work
_CONNECT_TIMEOUT = 5.0  # seconds; an unreachable server must not hang the follower
_COMMAND_TIMEOUT = 60.0
# asyncpg quotes the value it could not encode: a request body's text, not for a log
_ARGUMENT_VALUE = re.compile(r"(invalid input for query argument \$\d+)[^(]*")

_T = TypeVar("_T")
Pause = Callable[[], None]  # called between chunks of work (``follower.Courtesy``)


def _no_pause() -> None:
    pass


# {"kind": "sqlite", "path": …, "busy_timeout": …} or {"kind": "postgresql",
# "arguments": {…asyncpg.connect()'s}}, and maybe "factory": "module:function"
Target = dict[str, Any]


class WriteConnection(Protocol):
    """The follower's connection to the journal database."""

    def cursor(self, wal_id: str) -> Position | None:
        """How far the log ``wal_id`` has been applied (None: never)."""
        ...

    def write(
        self,
        batch: Batch,
        *,
        wal_id: str,
        start: Position | None,
        end: Position | None,
        pause: Pause = _no_pause,
    ) -> bool:
        """Write ``batch`` in one transaction, moving the cursor of ``wal_id`` from
        ``start`` to ``end`` (compare-and-set; False and nothing written when it is
        elsewhere).  Without ``end`` the cursor is left alone.  ``pause`` is called
        between chunks of rows."""
        ...

    def close(self) -> None: ...


def connect(target: Target) -> WriteConnection:
    """Open a write connection to ``target`` (blocking)."""
    factory = target.get("factory")
    if factory:
        module, _, name = str(factory).partition(":")
        opened: WriteConnection = getattr(importlib.import_module(module), name)(target)
        return opened
    if target["kind"] == "sqlite":
        return SQLiteConnection(Path(target["path"]), busy_timeout=float(target["busy_timeout"]))
    if target["kind"] == "postgresql":
        return PostgresConnection(dict(target["arguments"]))
    raise ValueError(f"journal: unsupported database {target['kind']!r}")


def refused(exc: BaseException) -> bool:
    """Whether a driver or the database rejected the data (rather than being out of
    reach): the follower then drops the offending event instead of retrying."""
    if isinstance(exc, ValueError | ArithmeticError | TypeError):
        return True  # a driver refusing a value as it binds it (asyncpg's DataError too)
    if isinstance(exc, sqlite3.DataError | sqlite3.IntegrityError):
        return True
    # asyncpg's by name (it is imported only with a PostgreSQL connection): the
    # database's verdict on a value, SQLSTATE classes 22 and 23
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"DataError", "IntegrityConstraintViolationError"})


def explain(exc: BaseException, password: str | None = None) -> str:
    """A one-line description of a driver error, safe to log: no SQL, no parameter
    values (request bodies), no password."""
    return scrub(f"{type(exc).__name__}: {exc}", password)


def scrub(text: str, password: str | None = None) -> str:
    """An error message cut to its first line, without the parameter value asyncpg
    quotes or ``password``, and at most 300 characters."""
    text = _ARGUMENT_VALUE.sub(r"\1 ", text.split("\n", 1)[0]).strip()
    if password:
        text = text.replace(password, "***")
    return text[:300]


class _Statements:
    """The write statements, with the placeholder ``mark(n)`` of one driver."""

    def __init__(self, mark: Callable[[int], str]) -> None:
        def marks(count: int) -> str:
            return ", ".join(mark(i) for i in range(1, count + 1))

        def names(columns: Sequence[str]) -> str:
            return ", ".join(f'"{column}"' for column in columns)

        self.read_cursor = f'SELECT segment, "offset" FROM journal_cursor WHERE wal_id = {mark(1)}'
        self.move_cursor = (
            f'UPDATE journal_cursor SET segment = {mark(1)}, "offset" = {mark(2)}, '
            f"updated_at = {mark(3)} WHERE wal_id = {mark(4)}"
        )
        self.move_cursor_from = (
            f'{self.move_cursor} AND segment = {mark(5)} AND "offset" = {mark(6)}'
        )
        self.first_cursor = (
            f'INSERT INTO journal_cursor (wal_id, segment, "offset", updated_at) '
            f"VALUES ({marks(4)}) ON CONFLICT (wal_id) DO NOTHING"
        )
        self.insert = (
            f"INSERT INTO requests ({names(ACCEPTED_COLUMNS)}) "
            f"VALUES ({marks(len(ACCEPTED_COLUMNS))}) ON CONFLICT (rid) DO NOTHING"
        )
        self.append = (
            f"UPDATE requests SET content_sent = COALESCE(content_sent, '') || {mark(1)} "
            f"WHERE rid = {mark(2)}"
        )
        ending = ", ".join(
            f'"{column}" = excluded."{column}"'
            for column in ENDING_COLUMNS
            if column != "content_sent"
        )
        # a final event whose accepted row is gone (pruned, or never applied) still
        # leaves a row: the minimal one this insert carries.  Only a client_gone ending
        # carries the text: it replaces the deltas' sum.
        ended = (
            f"ON CONFLICT (rid) DO UPDATE SET {ending}, "
            "content_sent = COALESCE(excluded.content_sent, requests.content_sent)"
        )
        self.finish = (
            f"INSERT INTO requests ({names(FINAL_COLUMNS)}) "
            f"VALUES ({marks(len(FINAL_COLUMNS))}) {ended}"
        )
        # a request accepted and ended in one batch: its whole row at once (on a
        # conflict, a replayed acceptance, it is an ending like any other)
        self.insert_finished = (
            f"INSERT INTO requests ({names(FINISHED_COLUMNS)}) "
            f"VALUES ({marks(len(FINISHED_COLUMNS))}) {ended}"
        )
        self.defer = (
            f"UPDATE requests SET state = '{ev.DEFERRED_STATE}', defer_until = {mark(1)}, "
            f"callback = {mark(2)} WHERE rid = {mark(3)}"
        )
        self.metadata = (
            f"UPDATE requests SET metadata_json = {mark(1)} WHERE completion_id = {mark(2)}"
        )
        self.delete = f"UPDATE requests SET deleted = TRUE WHERE completion_id = {mark(1)}"
        # the status page's hourly figures (``journal.traffic``): added to, never set
        self.traffic = (
            "INSERT INTO traffic_hours (route, hour, requests, failed, slow) "
            f"VALUES ({marks(5)}) ON CONFLICT (route, hour) DO UPDATE SET "
            "requests = traffic_hours.requests + excluded.requests, "
            "failed = traffic_hours.failed + excluded.failed, "
            "slow = traffic_hours.slow + excluded.slow"
        )
        self.ended_before = "SELECT rid, route, received_at, stream, state FROM requests WHERE rid"


_accepted_values = itemgetter(*ACCEPTED_COLUMNS)
_final_values = itemgetter(*FINAL_COLUMNS)
_finished_values = itemgetter(*FINISHED_COLUMNS)
_deferral_values = itemgetter("b_until", "b_callback", "b_rid")


def _rows(batch: Batch) -> Iterator[tuple[str, Iterable[Sequence[Any]]]]:
    """Each statement of ``batch`` with its parameter rows, in an order that respects
    the log's: new rows, stream text, endings, deferrals, then metadata and deletions
    (which find rows by completion id).  Rows are made as they are bound, not before."""
    if batch.inserts:
        yield "insert", map(_accepted_values, batch.inserts.values())
    if batch.finished:
        yield "insert_finished", map(_finished_values, batch.finished.values())
    if batch.deltas:
        yield "append", (("".join(parts), rid) for rid, parts in batch.deltas.items())
    if batch.finals:
        yield "finish", map(_final_values, batch.finals.values())
    if batch.deferrals:
        yield "defer", map(_deferral_values, batch.deferrals.values())
    if batch.metadata:
        yield "metadata", ((text, cid) for cid, text in batch.metadata.items())
    if batch.deletes:
        yield "delete", ((cid,) for cid in sorted(batch.deletes))


def _tally_in_batch(batch: Batch) -> tuple[traffic.Tally, list[str]]:
    """The traffic figures of the requests ``batch`` ends that it also holds the
    acceptance of, and the ids of those whose rows are in the database already."""
    tally = traffic.of_finished(batch.finished.values(), batch.objective)
    elsewhere = []
    for rid, ending in batch.finals.items():
        row = batch.inserts.get(rid)
        if row is None:
            elsewhere.append(rid)
            continue
        traffic.add(
            tally,
            route=row["route"],
            received_at=row["received_at"],
            stream=row["stream"],
            ending=ending,
            objective=batch.objective,
        )
    return tally, elsewhere


def _chunks(rows: Iterable[_T]) -> Iterator[list[_T]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, _CHUNK)):
        yield chunk


class SQLiteConnection:
    """``WriteConnection`` over the standard library's ``sqlite3``."""

    _statements = _Statements(lambda _: "?")

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self.path, self.busy_timeout = path.absolute(), busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._open()

    def __repr__(self) -> str:
        return f"<SQLiteConnection {self.path} {'open' if self._conn else 'closed'}>"

    def _open(self) -> None:
        # mode=rw: a missing database is an error to retry, not a new empty file
        conn = sqlite3.connect(
            f"{self.path.as_uri()}?mode=rw",
            uri=True,
            timeout=self.busy_timeout,
            isolation_level=None,  # transactions are begun and ended here
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            self._identity = self._file()
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _file(self) -> tuple[int, int] | None:
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            return None
        return found.st_dev, found.st_ino

    def _connection(self) -> sqlite3.Connection:
        """The open connection, reopened first if the file at the path changed."""
        if self._conn is None or self._file() != self._identity:
            self.close()
            self._open()
        assert self._conn is not None
        return self._conn

    def cursor(self, wal_id: str) -> Position | None:
        conn = self._connection()
        row = conn.execute(self._statements.read_cursor, (wal_id,)).fetchone()
        return None if row is None else Position(int(row[0]), int(row[1]))

    def write(
        self,
        batch: Batch,
        *,
        wal_id: str,
        start: Position | None,
        end: Position | None,
        pause: Pause = _no_pause,
    ) -> bool:
        conn, statements = self._connection(), self._statements
        conn.execute("BEGIN IMMEDIATE")  # the write lock, before any row work
        try:
            if end is not None and not self._advance(conn, wal_id, start, end):
                conn.execute("ROLLBACK")
                return False
            tally, elsewhere = _tally_in_batch(batch)
            for rids in _chunks(elsewhere):  # read before the endings are written
                marks = ", ".join("?" * len(rids))
                found = conn.execute(f"{statements.ended_before} IN ({marks})", rids)
                traffic.of_finals(batch.finals, found.fetchall(), batch.objective, tally)
            for name, rows in _rows(batch):
                sql = getattr(statements, name)
                for chunk in _chunks(rows):
                    conn.executemany(sql, chunk)
                    pause()
            if tally:
                conn.executemany(statements.traffic, traffic.upsert_rows(tally))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    self.close()  # the next write starts on a fresh connection
            raise
        return True

    def _advance(
        self, conn: sqlite3.Connection, wal_id: str, start: Position | None, end: Position
    ) -> bool:
        now = time.time()
        if start is None:
            moved = conn.execute(
                self._statements.move_cursor, (end.segment, end.offset, now, wal_id)
            )
        else:
            moved = conn.execute(
                self._statements.move_cursor_from,
                (end.segment, end.offset, now, wal_id, start.segment, start.offset),
            )
        if moved.rowcount == 1:
            return True
        # no cursor row yet (a new log), or someone else's: the insert tells which
        first = conn.execute(self._statements.first_cursor, (wal_id, end.segment, end.offset, now))
        return first.rowcount == 1

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _count(status: str) -> int:
    """The row count of an asyncpg command status (``UPDATE 1``, ``INSERT 0 1``)."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresConnection:
    """``WriteConnection`` over ``asyncpg``, on an event loop of its own that runs only
    while a call is under way."""

    _statements = _Statements(lambda n: f"${n}")

    def __init__(self, arguments: dict[str, Any]) -> None:
        import asyncpg  # only a PostgreSQL journal pays for the import

        self._loop = asyncio.new_event_loop()
        try:
            self._conn: Any = self._run(
                asyncpg.connect(
                    **arguments, timeout=_CONNECT_TIMEOUT, command_timeout=_COMMAND_TIMEOUT
                )
            )
        except BaseException:
            self._loop.close()
            raise

    def __repr__(self) -> str:
        return f"<PostgresConnection {'closed' if self._loop.is_closed() else 'open'}>"

    def _run(self, work: Coroutine[Any, Any, _T]) -> _T:
        return self._loop.run_until_complete(work)

    def cursor(self, wal_id: str) -> Position | None:
        row = self._run(self._conn.fetchrow(self._statements.read_cursor, wal_id))
        return None if row is None else Position(int(row[0]), int(row[1]))

    def write(
        self,
        batch: Batch,
        *,
        wal_id: str,
        start: Position | None,
        end: Position | None,
        pause: Pause = _no_pause,
    ) -> bool:
        return self._run(self._write(batch, wal_id, start, end, pause))

    async def _write(
        self, batch: Batch, wal_id: str, start: Position | None, end: Position | None, pause: Pause
    ) -> bool:
        conn, statements = self._conn, self._statements
        transaction = conn.transaction()
        await transaction.start()
        try:
            if end is not None and not await self._advance(wal_id, start, end):
                await transaction.rollback()
                return False
            tally, elsewhere = _tally_in_batch(batch)
            for rids in _chunks(elsewhere):  # read before the endings are written
                found = await conn.fetch(f"{statements.ended_before} = ANY($1::text[])", rids)
                traffic.of_finals(batch.finals, found, batch.objective, tally)
            for name, rows in _rows(batch):
                sql = getattr(statements, name)
                for chunk in _chunks(rows):
                    await conn.executemany(sql, chunk)
                    pause()
            if tally:
                await conn.executemany(statements.traffic, traffic.upsert_rows(tally))
        except BaseException:
            if not conn.is_closed():
                with contextlib.suppress(Exception):  # the first error is the news
                    await transaction.rollback()
            raise
        await transaction.commit()
        return True

    async def _advance(self, wal_id: str, start: Position | None, end: Position) -> bool:
        conn, now = self._conn, time.time()
        if start is None:
            moved = await conn.execute(
                self._statements.move_cursor, end.segment, end.offset, now, wal_id
            )
        else:
            moved = await conn.execute(
                self._statements.move_cursor_from,
                end.segment,
                end.offset,
                now,
                wal_id,
                start.segment,
                start.offset,
            )
        if _count(moved) == 1:
            return True
        first = await conn.execute(
            self._statements.first_cursor, wal_id, end.segment, end.offset, now
        )
        return _count(first) == 1

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self._conn.close(timeout=2))
        except Exception:  # the server is gone: drop the socket without goodbye
            self._conn.terminate()
        finally:
            self._loop.close()
