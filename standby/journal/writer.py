"""Brings the journal database up to date from the write-ahead log, off the event loop.

``JournalWriter`` is the gateway's handle on its follower process
(``standby.journal.follower``, which says why it is a process): it starts it, restarts
it if it ever exits on its own, relays what it logs, and keeps its last reported state —
how far the database has applied the log, the counters, whether the database answers.
The event loop's part is small: appending to the log is ``Journal``'s one ``write`` per
event and involves the writer not at all; reading the follower's messages is one line
per transaction; ``flush()`` sends one line and waits.

Rows and cursor commit together, so a restarted follower resumes exactly where the last
commit ended; ``stop(timeout=0)`` kills the follower, which is exactly a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import standby
from standby.errors import JournalUnavailable
from standby.journal.drivers import Target
from standby.journal.follower import Settings
from standby.journal.traffic import DEFAULT_OBJECTIVE
from standby.journal.wal import Position, WriteAheadLog

log = logging.getLogger("standby.journal")

_MESSAGE_LIMIT = 1024 * 1024  # bytes in one message of the follower (a logged traceback)
# the follower imports the same standby the gateway runs, from wherever that is
_ROOT = str(Path(standby.__file__).resolve().parent.parent)


class EventSink(Protocol):
    """What the writer needs of the database (``SQLStore``)."""

    def writer_target(self) -> Target:
        """Where the follower process connects to (it gets it on its input)."""
        ...


class JournalWriter:
    """Follows one write-ahead log (``wal_id``) into the database in a follower process.

    ``batch`` caps the lines per transaction; ``linger`` is how long the follower
    gathers after a transaction that took all there was (``flush()`` cuts it short);
    ``idle_interval`` is how often it looks at an idle log; ``backoff`` is the first
    and the longest pause between retries while the database is away (and between
    restarts of a follower that exited by itself); ``nice`` lowers the follower's
    scheduling priority below the gateway's.  ``clock`` (wall time) stamps outages.
    """

    def __init__(
        self,
        wal: WriteAheadLog,
        store: EventSink,
        *,
        wal_id: str,
        batch: int = 1000,
        idle_interval: float = 0.1,
        linger: float = 0.1,
        clock: Callable[[], float] = time.time,
        backoff: tuple[float, float] = (0.1, 5.0),
        nice: int = 5,
        objective: float = DEFAULT_OBJECTIVE,
    ) -> None:
        self.wal, self.store, self.wal_id = wal, store, wal_id
        self.objective = objective  # the status page's, for its traffic figures
        self.batch, self.idle_interval, self.linger = max(1, batch), idle_interval, linger
        self.clock, self.backoff, self.nice = clock, backoff, nice
        # the follower's last report
        self.seen = Position(0, 0)  # everything before this is in the database
        self.committed: Position | None = None
        self.batches = self.events = self.skipped = self.dropped = self.outages = 0
        self.db_up, self.last_error, self.down_since = True, "", 0.0
        self.restarts = 0  # times the follower exited by itself and was started again
        # the writer's own state
        self._start_end = Position(0, 0)  # the log's end when start() ran
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._running = False
        self._progress = asyncio.Event()
        self._waiters = 0
        self._hurried = False  # a hurry was sent and not yet answered

    def __repr__(self) -> str:
        state = "up" if self.db_up else "down"
        pid = self._process.pid if self._process else None
        return (
            f"<JournalWriter {self.wal_id} follower {pid} db {state} at {self.committed} "
            f"lag {self.lag()}>"
        )

    # -- control -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the follower process (it reads the committed position first, and
        retries through an outage); returns at once."""
        if self._supervisor is not None:
            return
        self._start_end = self.wal.end
        self._stopping.clear()
        self._running = True
        self._supervisor = asyncio.create_task(
            self._supervise(), name=f"journal-writer-{self.wal_id}"
        )

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
        """Let the follower drain what the database takes within ``timeout``, then stop
        it.  ``timeout=0`` kills it at once, like a crash would (the log keeps the rest).
        """
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is None:
            return
        self._stopping.set()
        process = self._process
        if process is not None and process.returncode is None:
            if timeout > 0:
                self._send(process, b"stop\n")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), timeout)
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        await supervisor
        self._running = False
        self._wake_waiters()  # they find the writer gone and give up

    @property
    def pid(self) -> int | None:
        """The follower process's id, while it runs."""
        return self._process.pid if self._process is not None else None

    def lag(self) -> int:
        return self.wal.bytes_after(self.committed or Position(0, 0))

    def status(self) -> dict[str, Any]:
        return {
            "db_up": self.db_up,
            "lag_bytes": self.lag(),
            "committed": str(self.committed) if self.committed else None,
            "log_end": str(self.wal.end),  # how far the log was appended
            "last_error": self.last_error or None,
            "batches": self.batches,
            "events": self.events,
            "skipped_lines": self.skipped,
            "dropped_events": self.dropped,
            "outages": self.outages,
            "down_since": None if self.db_up else self.down_since,
            "follower_restarts": self.restarts,
        }

    async def _wait_until(self, target: Position, limit: float | None) -> None:
        if self.seen >= target:
            return
        if not self._running:
            raise JournalUnavailable("the journal writer is not running")
        self._waiters += 1
        try:
            async with asyncio.timeout(limit):
                while self.seen < target:
                    if not self._running:
                        raise JournalUnavailable("the journal writer stopped")
                    self._hurry()
                    await self._progress.wait()
        except TimeoutError:
            why = f": {self.last_error}" if not self.db_up else ""
            raise JournalUnavailable(
                f"the journal database is {self.lag()} bytes behind{why}"
            ) from None
        finally:
            self._waiters -= 1

    def _hurry(self) -> None:
        process = self._process
        if process is not None and not self._hurried:
            self._hurried = self._send(process, b"hurry\n")

    def _wake_waiters(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    # -- the follower process ------------------------------------------------------------

    def _settings(self) -> Settings:
        return Settings(
            wal_dir=str(self.wal.directory.resolve()),
            wal_id=self.wal_id,
            target=self.store.writer_target(),
            batch=self.batch,
            linger=self.linger,
            idle_interval=self.idle_interval,
            backoff=self.backoff,
            nice=self.nice,
            objective=self.objective,
        )

    async def _supervise(self) -> None:
        delay = self.backoff[0]
        try:
            while not self._stopping.is_set():
                try:
                    self._process = await self._spawn()
                except (OSError, ValueError) as exc:  # no process, or no database to name
                    self.last_error = f"cannot start the journal follower: {exc}"
                    log.error("journal: %s", self.last_error)
                else:
                    if self._stopping.is_set():  # stop() came while it was starting
                        with contextlib.suppress(ProcessLookupError):
                            self._process.kill()
                    await self._listen(self._process)
                    code = await self._process.wait()
                    self._process = None
                    if self._stopping.is_set():
                        return
                    self.restarts += 1
                    self.last_error = f"the journal follower exited with status {code}"
                    log.error("journal: %s; starting it again", self.last_error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, self.backoff[1])
        finally:
            self._running = False
            self._wake_waiters()

    async def _spawn(self) -> asyncio.subprocess.Process:
        settings = self._settings()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [_ROOT, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "standby.journal.follower",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=_MESSAGE_LIMIT,
        )
        self._hurried = False
        self._send(process, settings.to_line())
        if self._waiters:
            self._hurry()
        return process

    def _send(self, process: asyncio.subprocess.Process, line: bytes) -> bool:
        if process.stdin is None or process.stdin.is_closing():
            return False
        try:
            process.stdin.write(line)
        except (BrokenPipeError, ConnectionResetError):  # it is exiting
            return False
        return True

    async def _listen(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while True:
            try:
                line = await process.stdout.readline()
            except ValueError:  # a message over the limit: skip it
                continue
            if not line:
                return
            try:
                message = json.loads(line)
            except ValueError:
                log.warning("journal: the follower said something unexpected: %.200r", line)
                continue
            if message.get("t") == "state":
                self._update(message)
            elif message.get("t") == "log":
                log.log(int(message["level"]), "%s", message["message"])

    def _update(self, state: dict[str, Any]) -> None:
        self.seen = Position.parse(state["seen"])
        self.committed = Position.parse(state["committed"]) if state["committed"] else None
        self.batches, self.events = state["batches"], state["events"]
        self.skipped, self.dropped = state["skipped"], state["dropped"]
        self.db_up, self.last_error = state["db_up"], state["last_error"]
        self.outages, self.down_since = state["outages"], state["down_since"] or 0.0
        self._hurried = False
        if self._waiters:
            self._wake_waiters()
