"""Brings the journal database up to date from the write-ahead log, off the request path.

One task follows the log from the position the database has committed for this log
(``journal_cursor``), applies the events in transactions of at most ``batch`` events
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
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from standby.errors import JournalUnavailable
from standby.journal import events as ev
from standby.journal.wal import Position, WriteAheadLog

log = logging.getLogger("standby.journal")

_READ_BYTES = 1024 * 1024  # per log read: bounds the event-loop time one decode takes
_Item = tuple[dict[str, Any] | None, Position]  # an event (None: undecodable) and its end


class EventSink(Protocol):
    """What the writer needs of the database (``SQLStore``)."""

    async def cursor(self, wal_id: str) -> Position | None: ...

    async def apply(self, events: Sequence[dict[str, Any]], *, wal_id: str,
                    start: Position | None = None, end: Position | None = None) -> bool: ...

    def explain(self, exc: BaseException) -> str: ...


def _refused(exc: Exception) -> bool:
    """The data was rejected, by the driver or the database (not: it was unreachable)."""
    if isinstance(exc, DataError | IntegrityError | ValueError | ArithmeticError | TypeError):
        return True  # the plain ones: the SQLite driver refusing a value as it binds it
    if isinstance(exc, DBAPIError):
        # asyncpg checks arguments client-side and SQLAlchemy reports that as a bare
        # DBAPIError; the driver's own exception is chained behind it
        cause = getattr(exc.orig, "__cause__", None)
        return isinstance(cause, ValueError | ArithmeticError) or (
            type(cause).__name__ == "DataError")
    return isinstance(exc, StatementError)


def _scrubbed(value: Any) -> Any:
    """``value`` with lone UTF-16 surrogates (valid JSON escapes, invalid text) replaced."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_scrubbed(item) for item in value]
    if isinstance(value, dict):
        return {_scrubbed(key): _scrubbed(item) for key, item in value.items()}
    return value


def decode_line(line: bytes) -> dict[str, Any]:
    """One log line as an event; raises ``ValueError`` if it is not one.

    orjson refuses a lone surrogate escape (``"\\ud800"``), which a caller's raw body
    may hold and the log embeds as is; the standard parser takes it, and the surrogate
    becomes U+FFFD, so such a request is journaled rather than skipped.
    """
    try:
        return ev.decode(line)
    except ValueError:
        event = _scrubbed(json.loads(line))
        if not isinstance(event, dict) or "e" not in event:
            raise
        return event


class JournalWriter:
    """Follows one write-ahead log (``wal_id``) into the database; see the module doc.

    ``batch`` caps the events per transaction; ``idle_interval`` is how often an idle
    writer looks at the log without being woken; ``backoff`` is the first and the
    longest pause between retries while the database is away.  ``clock`` (wall time)
    only stamps the outage shown by ``status()``.
    """

    def __init__(self, wal: WriteAheadLog, store: EventSink, *, wal_id: str,
                 batch: int = 1000, idle_interval: float = 0.05,
                 clock: Callable[[], float] = time.time,
                 backoff: tuple[float, float] = (0.1, 5.0)) -> None:
        self.wal, self.store, self.wal_id = wal, store, wal_id
        self.batch, self.idle_interval, self.clock = max(1, batch), idle_interval, clock
        self.backoff = backoff
        self.db_up, self.last_error = True, ""
        self.batches = self.events = self.skipped = self.dropped = self.outages = 0
        self._committed: Position | None = None  # the database's cursor, once read
        self._read_to = Position(0, 0)  # the log has been read into _pending up to here
        self._pending: list[_Item] = []
        self._seen = Position(0, 0)  # everything before this is committed
        self._start_end = Position(0, 0)  # the log's end when start() ran
        self._pruned_to = -1  # log segments before this one are deleted
        self._wakeup, self._stopped = asyncio.Event(), asyncio.Event()
        self._progress = asyncio.Event()
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
        return {"db_up": self.db_up, "lag_bytes": self.lag(),
                "committed": str(self._committed) if self._committed else None,
                "last_error": self.last_error or None, "batches": self.batches,
                "events": self.events, "skipped_lines": self.skipped,
                "dropped_events": self.dropped, "outages": self.outages,
                "down_since": None if self.db_up else self._down_since}

    async def _wait_until(self, target: Position, limit: float | None) -> None:
        if self._seen >= target:
            return
        if self._task is None or self._task.done():
            raise JournalUnavailable("the journal writer is not running")
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
                f"the journal database is {self.lag()} bytes behind{why}") from None

    # -- the follower ----------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.backoff[0]
        while True:
            # cleared before reading, so an append during the work sets it again
            self._wakeup.clear()
            try:
                if self._committed is None:
                    await self._load_cursor()
                progressed = await self._step()
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
                log.warning("journal: database back after %.1fs; replaying the spool",
                            self.clock() - self._down_since)
                self.db_up, self.last_error = True, ""
            if not progressed:
                if self._stopped.is_set():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.idle_interval)

    def _outage(self, exc: Exception) -> None:
        self.last_error = self.store.explain(exc)
        if self.db_up:  # once per outage, not once per retry
            self.db_up, self._down_since = False, self.clock()
            self.outages += 1
            log.warning("journal: database unreachable (%s); spooling to %s",
                        self.last_error, self.wal.directory)

    async def _load_cursor(self) -> None:
        committed = await self.store.cursor(self.wal_id) or Position(0, 0)
        self._committed = self._read_to = committed
        self._pending.clear()
        self._advanced(committed)

    async def _step(self) -> bool:
        """Apply one batch; False when there was nothing to apply."""
        self._fill()
        if not self._pending:
            self._advanced(self._read_to)  # nothing pending: read to the end is applied
            return False
        chunk = self._take()
        events = [event for event, _ in chunk if event is not None]
        try:
            done = await self._apply(events, chunk[-1][1])
        except Exception as exc:
            if not _refused(exc):
                raise
            done = await self._apply_singly(chunk)
        if done:
            del self._pending[:len(chunk)]
        return True

    async def _apply(self, events: list[dict[str, Any]], end: Position) -> bool:
        ok = await self.store.apply(events, wal_id=self.wal_id, start=self._committed, end=end)
        if not ok:
            # the cursor is not where we left it: a predecessor's last commit landed
            # after we read it.  Start again from the database's position.
            log.info("journal: cursor of %s moved underneath; reloading", self.wal_id)
            self._committed = None
            return False
        self.batches += 1
        self.events += len(events)
        self._committed = end
        self._advanced(end)
        if end.segment > self._pruned_to:
            self.wal.prune(end)
            self._pruned_to = end.segment
        return True

    async def _apply_singly(self, chunk: list[_Item]) -> bool:
        for event, end in chunk:
            try:
                if not await self._apply([event] if event else [], end):
                    return False
            except Exception as exc:
                if not _refused(exc):
                    raise
                self.dropped += 1
                log.error("journal: the database refused a %r event (rid %s), dropped: %s",
                          event and event.get("e"), event and event.get("rid"),
                          self.store.explain(exc))
                if not await self._apply([], end):
                    return False
        return True

    def _fill(self) -> None:
        """Read the log until a batch is pending or the log is exhausted."""
        while sum(1 for event, _ in self._pending if event is not None) < self.batch:
            lines, end = self.wal.read(self._read_to, _READ_BYTES)
            if not lines:
                self._read_to = max(self._read_to, end)
                return
            self._pending.extend(self._decode(lines, self._read_to, end))
            self._read_to = end

    def _decode(self, lines: list[bytes], start: Position, end: Position) -> list[_Item]:
        offset = start.offset if start.segment == end.segment else 0
        exact = offset + sum(len(line) + 1 for line in lines) == end.offset
        items: list[_Item] = []
        for line in lines:
            offset += len(line) + 1
            try:
                event: dict[str, Any] | None = decode_line(line)
            except ValueError:  # a line torn by a crash, or not ours
                event, self.skipped = None, self.skipped + 1
            # positions are exact unless a line held a stray line break; then every line
            # of this read shares the end and _take() never splits them
            items.append((event, Position(end.segment, offset) if exact else end))
        return items

    def _take(self) -> list[_Item]:
        """The next batch: up to ``batch`` events, never split inside one position."""
        count, size = 0, 0
        for event, end in self._pending:
            if event is not None:
                if count == self.batch and end != self._pending[size - 1][1]:
                    break
                count += 1
            size += 1
        return self._pending[:size]

    def _advanced(self, position: Position) -> None:
        if position > self._seen:
            self._seen = position
        self._progress.set()
        self._progress = asyncio.Event()
