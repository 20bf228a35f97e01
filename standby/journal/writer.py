"""Brings the journal database up to date from the write-ahead log, off the request path.

One task follows the log from the position the database has committed for this log
(``journal_cursor``), applies the events in transactions of at most ``batch`` lines
(a group commit: whatever was appended while one transaction ran goes into the next),
and deletes log segments the database has wholly absorbed.  Rows and cursor commit
together, so a restart resumes exactly where the last commit ended.

When the database fails, the log simply keeps growing — it is the spool — and the task
retries with capped exponential backoff, logging once per outage; the request path never
waits for or hears about it.  An event the database refuses on its own merits (bad data,
not an outage) is dropped and logged by itself, so it cannot block the ones behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from standby.errors import JournalUnavailable
from standby.journal.batch import Batch, describe, prepare
from standby.journal.wal import Position, WriteAheadLog

log = logging.getLogger("standby.journal")

_READ_BYTES = 1024 * 1024  # per log read
_INLINE = 64  # lines prepared on the event loop; more go to a worker thread
_Line = tuple[bytes, Position]  # a log line and the position just after it


class EventSink(Protocol):
    """What the writer needs of the database (``SQLStore``)."""

    async def cursor(self, wal_id: str) -> Position | None: ...

    async def write(
        self,
        batch: Batch,
        *,
        wal_id: str,
        start: Position | None = None,
        end: Position | None = None,
    ) -> bool: ...

    def explain(self, exc: BaseException) -> str: ...

    def refused(self, exc: BaseException) -> bool: ...


def _positioned(lines: list[bytes], start: Position, end: Position) -> list[_Line]:
    """Each line read from ``start`` to ``end`` with the position just after it."""
    offset = start.offset if start.segment == end.segment else 0
    if offset + sum(len(line) + 1 for line in lines) != end.offset:
        # a line held a stray line break (not one orjson wrote): positions inside this
        # read are unknown, so every line shares the end and _take() never splits them
        return [(line, end) for line in lines]
    positioned = []
    for line in lines:
        offset += len(line) + 1
        positioned.append((line, Position(end.segment, offset)))
    return positioned


class JournalWriter:
    """Follows one write-ahead log (``wal_id``) into the database; see the module doc.

    ``batch`` caps the lines per transaction.  After a transaction that did not fill a
    batch the writer gathers for ``linger`` seconds before the next (unless ``flush()``
    is waiting): a transaction costs about a millisecond of CPU whatever its size, and
    committing every append as it comes would spend a core on it at a few hundred
    requests a second.  ``idle_interval`` is how often an idle writer looks at the log
    without being woken; ``backoff`` is the first and the longest pause between retries
    while the database is away.  ``clock`` (wall time) only stamps outages in ``status()``.
    """

    def __init__(
        self,
        wal: WriteAheadLog,
        store: EventSink,
        *,
        wal_id: str,
        batch: int = 1000,
        idle_interval: float = 0.05,
        linger: float = 0.01,
        clock: Callable[[], float] = time.time,
        backoff: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        self.wal, self.store, self.wal_id = wal, store, wal_id
        self.batch, self.idle_interval, self.clock = max(1, batch), idle_interval, clock
        self.backoff, self.linger = backoff, linger
        self.db_up, self.last_error = True, ""
        self.batches = self.events = self.skipped = self.dropped = self.outages = 0
        self._committed: Position | None = None  # the database's cursor, once read
        self._read_to = Position(0, 0)  # the log has been read into _pending up to here
        self._pending: list[_Line] = []  # read, not yet committed
        self._seen = Position(0, 0)  # everything before this is committed
        self._start_end = Position(0, 0)  # the log's end when start() ran
        self._pruned_to = -1  # log segments before this one are deleted
        self._wakeup, self._stopped = asyncio.Event(), asyncio.Event()
        self._progress = asyncio.Event()
        self._hurry = asyncio.Event()  # set while someone waits for the database
        self._waiters = 0
        self._task: asyncio.Task[None] | None = None
        self._down_since = 0.0

    def __repr__(self) -> str:
        state = "up" if self.db_up else "down"
        return f"<JournalWriter {self.wal_id} db {state} at {self._committed} lag {self.lag()}>"

    # -- control ---------------------------------------------------------------------

    async def start(self) -> None:
        """Read this log's committed position (if the database answers) and follow."""
        if self._task is not None:
            return
        self._start_end = self.wal.end
        self._stopped.clear()
        try:
            await self._load_cursor()
        except Exception as exc:  # an outage from the start: the loop retries
            self._outage(exc)
        self._task = asyncio.create_task(self._run(), name=f"journal-writer-{self.wal_id}")

    def wake(self) -> None:
        """An event was appended (called by ``Journal`` on the request path)."""
        self._wakeup.set()

    # a timeout parameter, not asyncio.timeout(): expiry is JournalUnavailable, a state of
    # the journal the caller reports, not a TimeoutError of its own
    async def flush(self, timeout: float | None = 5.0) -> None:  # noqa: ASYNC109
        """Return once everything appended before the call is in the database.

        Raises ``JournalUnavailable`` if that takes longer than ``timeout`` (the database
        is down or far behind) or the writer is not running.
        """
        await self._wait_until(self.wal.end, timeout)

    async def caught_up(self) -> None:
        """Wait (without limit) until the log present at ``start()`` is applied."""
        await self._wait_until(self._start_end, None)

    async def stop(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Drain what the database will take within ``timeout``, then stop.

        ``timeout=0`` stops at once, like a crash would (the log keeps the rest).
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopped.set()
        self._hurry.set()
        self._wakeup.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._progress.set()  # waiters find the writer gone and give up

    def lag(self) -> int:
        return self.wal.bytes_after(self._committed or Position(0, 0))

    def status(self) -> dict[str, Any]:
        return {
            "db_up": self.db_up,
            "lag_bytes": self.lag(),
            "committed": str(self._committed) if self._committed else None,
            "last_error": self.last_error or None,
            "batches": self.batches,
            "events": self.events,
            "skipped_lines": self.skipped,
            "dropped_events": self.dropped,
            "outages": self.outages,
            "down_since": None if self.db_up else self._down_since,
        }

    async def _wait_until(self, target: Position, limit: float | None) -> None:
        if self._seen >= target:
            return
        if self._task is None or self._task.done():
            raise JournalUnavailable("the journal writer is not running")
        self._waiters += 1
        self._hurry.set()
        self._wakeup.set()
        try:
            async with asyncio.timeout(limit):
                while self._seen < target:
                    if self._task is None:
                        raise JournalUnavailable("the journal writer stopped")
                    await self._progress.wait()
        except TimeoutError:
            why = f": {self.last_error}" if not self.db_up else ""
            raise JournalUnavailable(
                f"the journal database is {self.lag()} bytes behind{why}"
            ) from None
        finally:
            self._waiters -= 1
            if not self._waiters:
                self._hurry.clear()

    # -- the follower ----------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.backoff[0]
        while True:
            # cleared before reading, so an append during the work sets it again
            self._wakeup.clear()
            try:
                if self._committed is None:
                    await self._load_cursor()
                applied = await self._step()
            except Exception as exc:
                if self._stopped.is_set():
                    return  # stopping with the database away: the log keeps the rest
                self._outage(exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), delay)
                delay = min(delay * 2, self.backoff[1])
                continue
            delay = self.backoff[0]
            if not self.db_up:
                log.warning(
                    "journal: database back after %.1fs; replaying the spool",
                    self.clock() - self._down_since,
                )
                self.db_up, self.last_error = True, ""
            if 0 < applied < self.batch:
                with contextlib.suppress(TimeoutError):  # group the next commit
                    await asyncio.wait_for(self._hurry.wait(), self.linger)
            elif not applied:
                if self._stopped.is_set():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.idle_interval)

    def _outage(self, exc: Exception) -> None:
        self.last_error = self.store.explain(exc)
        if self.db_up:  # once per outage, not once per retry
            self.db_up, self._down_since = False, self.clock()
            self.outages += 1
            log.warning(
                "journal: database unreachable (%s); spooling to %s",
                self.last_error,
                self.wal.directory,
            )

    async def _load_cursor(self) -> None:
        committed = await self.store.cursor(self.wal_id) or Position(0, 0)
        self._committed = self._read_to = committed
        self._pending.clear()
        self._advanced(committed)

    async def _step(self) -> int:
        """Apply one batch; returns its size in lines (0: there was nothing to apply)."""
        self._fill()
        if not self._pending:
            self._advanced(self._read_to)  # nothing pending: read to the end is applied
            return 0
        chunk = self._take()
        try:
            done = await self._write(await self._prepare(chunk), chunk[-1][1])
        except Exception as exc:
            if not self.store.refused(exc):
                raise
            done = await self._write_singly(chunk)
        if done:
            del self._pending[: len(chunk)]
        return len(chunk)

    async def _prepare(self, chunk: list[_Line]) -> Batch:
        lines = [line for line, _ in chunk]
        if len(lines) < _INLINE:
            return prepare(lines, self.wal_id)
        # milliseconds of parsing, and thousands of short-lived objects: in a worker
        # thread, not on the event loop that serves requests
        return await asyncio.to_thread(prepare, lines, self.wal_id)

    async def _write(self, batch: Batch, end: Position) -> bool:
        ok = await self.store.write(batch, wal_id=self.wal_id, start=self._committed, end=end)
        if not ok:
            # the cursor is not where we left it: a predecessor's last commit landed
            # after we read it.  Start again from the database's position.
            log.info("journal: cursor of %s moved underneath; reloading", self.wal_id)
            self._committed = None
            return False
        self.batches += 1
        self.events += batch.events
        self.skipped += batch.skipped
        self.dropped += batch.dropped
        self._committed = end
        self._advanced(end)
        if end.segment > self._pruned_to:
            self.wal.prune(end)
            self._pruned_to = end.segment
        return True

    async def _write_singly(self, chunk: list[_Line]) -> bool:
        """The database refused a batch: write its lines one by one, dropping (and
        logging) only those it refuses on their own."""
        for line, end in chunk:
            batch = prepare([line], self.wal_id)
            try:
                if not await self._write(batch, end):
                    return False
            except Exception as exc:
                if not self.store.refused(exc):
                    raise
                self.dropped += 1
                log.error(
                    "journal: the database refused %s at %s, dropped: %s",
                    describe(line),
                    end,
                    self.store.explain(exc),
                )
                if not await self._write(Batch(), end):
                    return False
        return True

    def _fill(self) -> None:
        """Read the log until a batch of lines is pending or the log is exhausted."""
        while len(self._pending) < self.batch:
            lines, end = self.wal.read(self._read_to, _READ_BYTES)
            if not lines:
                self._read_to = max(self._read_to, end)
                return
            self._pending.extend(_positioned(lines, self._read_to, end))
            self._read_to = end

    def _take(self) -> list[_Line]:
        """The next batch: up to ``batch`` lines, never split inside one position."""
        size = min(self.batch, len(self._pending))
        while size < len(self._pending) and self._pending[size][1] == self._pending[size - 1][1]:
            size += 1
        return self._pending[:size]

    def _advanced(self, position: Position) -> None:
        if position > self._seen:
            self._seen = position
        self._progress.set()
        self._progress = asyncio.Event()
