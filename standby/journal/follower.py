"""The journal's follower: a process of its own that applies the write-ahead log.

``python -m standby.journal.follower`` is started by ``standby.journal.writer`` with
its settings as the first line of its standard input.  From then on it follows the log
from the position the database has committed for it (``journal_cursor``): it folds up to
``batch`` lines into one transaction (``standby.journal.batch``), writes it with plain
driver calls (``standby.journal.drivers``) together with the log position it reaches —
compare-and-set, so a batch lands exactly once — and deletes the log segments the
database has wholly absorbed.

Why a process and not a thread of the gateway: decoding and folding events is Python
work, and a thread doing it holds the interpreter lock that the event loop needs.
Measured on a shared core, a thread replaying a spool that the operating system
preempts while it holds the lock stalls every request for as long: p50 latency rose to
200 ms with stalls of seconds at 500 requests/s; the same replay in a process of its
own left the gateway's p50 at a few ms.  A process also runs on another core when
there is one, and a ``kill`` stops it mid-transaction exactly like a crash.

Its rhythm: after a transaction that took all that was there, it waits ``linger``
seconds before it looks again, so a trickle of requests costs at most a few
transactions a second; while a whole batch is waiting it commits batch after batch.  A
log it finds idle it looks at after ``idle_interval``, then less and less often, up to
once a second.  The gateway's ``flush()`` sends ``hurry``: the follower commits what
is there at once.  When the database fails, the log simply keeps growing — it is the
spool — and the follower retries with capped exponential backoff, saying so once per
outage; an event the database refuses on its own merits (bad data, not an outage) is
dropped and logged by itself, so it cannot block the ones behind it.

The protocol, one line each way per message: the gateway writes ``hurry`` and ``stop``
(drain what the database takes, then exit); the follower writes JSON objects,
``{"t": "state", …}`` (its position and counters, after each change) and
``{"t": "log", "level": …, "message": …}`` (what it logs, for the gateway to log).
End of its input means the gateway is gone: it exits after the transaction it is in.
It ignores SIGINT and SIGTERM, which a terminal or a service manager sends to the whole
process group, so that the gateway's shutdown decides when it stops.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

from standby.journal.batch import Batch, describe, prepare
from standby.journal.drivers import Target, WriteConnection, connect, explain, refused
from standby.journal.traffic import DEFAULT_OBJECTIVE
from standby.journal.wal import LogReader, Position
from standby.placement import spare_cores

log = logging.getLogger("standby.journal")

_READ_BYTES = 1024 * 1024  # per log read
_SLICE = 64  # lines decoded between two pauses
_IDLE_MAX = 1.0  # seconds between looks at a log that has long been idle
# A position packed into one int, segment << _SHIFT | offset: the pending lines' ends are
# a list of ints, not of objects for the garbage collector to track (a segment is far
# smaller than 2**40 bytes).
_SHIFT = 40


def _pack(position: Position) -> int:
    return position.segment << _SHIFT | position.offset


def _unpack(packed: int) -> Position:
    return Position(packed >> _SHIFT, packed & ((1 << _SHIFT) - 1))


class Courtesy:
    """Called often by the follower's work: after each ``budget`` seconds of it, gives
    the CPU to whoever is waiting for it.

    On a core shared with the gateway, the scheduler would otherwise let a busy follower
    finish its time slice (milliseconds) before the gateway, woken by a request, runs;
    measured, that added 2.5 ms to the p99 latency of requests served while a spool
    replayed.  With nobody waiting, a yield costs a system call.
    """

    def __init__(self, budget: float = 0.0005) -> None:
        self.budget = budget
        self._since = time.perf_counter()

    def __call__(self) -> None:
        now = time.perf_counter()
        if now - self._since >= self.budget:
            os.sched_yield()
            self._since = time.perf_counter()


def _positioned(lines: list[bytes], start: Position, end: Position) -> list[int]:
    """The packed position just after each line read from ``start`` to ``end``."""
    offset = start.offset if start.segment == end.segment else 0
    if offset + sum(len(line) + 1 for line in lines) != end.offset:
        # a line held a stray line break (not one orjson wrote): positions inside this
        # read are unknown, so every line shares the end and _take() never splits them
        return [_pack(end)] * len(lines)
    base, ends = end.segment << _SHIFT, []
    for line in lines:
        offset += len(line) + 1
        ends.append(base | offset)
    return ends


class Follower:
    """Applies one write-ahead log (``wal_id``) to the database a batch at a time.

    ``connect`` opens a ``WriteConnection`` (lazily, and again after ``disconnect()``);
    ``refused`` tells an error caused by the data (the event is dropped alone) from one
    of the database (raised: the caller retries); ``pause`` is called between slices of
    work (``Courtesy``); ``on_progress`` whenever the database answered (``seen`` may
    have moved).
    """

    def __init__(
        self,
        log_reader: LogReader,
        connect: Callable[[], WriteConnection],
        *,
        wal_id: str,
        batch: int = 1000,
        refused: Callable[[BaseException], bool] = refused,
        explain: Callable[[BaseException], str] = explain,
        pause: Callable[[], None] = lambda: None,
        on_progress: Callable[[], None] = lambda: None,
        objective: float = DEFAULT_OBJECTIVE,
    ) -> None:
        self.reader, self.wal_id, self.batch = log_reader, wal_id, max(1, batch)
        self.objective = objective  # the status page's (``journal.traffic``)
        self._connect, self._refused, self._explain = connect, refused, explain
        self.pause, self._on_progress = pause, on_progress
        self.committed: Position | None = None  # the database's cursor, once read
        self.seen = Position(0, 0)  # everything before this is in the database
        self.batches = self.events = self.skipped = self.dropped = 0
        self._conn: WriteConnection | None = None
        self._read_to = Position(0, 0)  # the log has been read into the pending lines to here
        self._lines: list[bytes] = []  # read, not yet committed
        self._ends: list[int] = []  # the packed position just after each pending line
        self._pruned_to = -1  # log segments before this one are deleted

    def __repr__(self) -> str:
        return (
            f"<Follower {self.wal_id} at {self.committed} pending {len(self._lines)} "
            f"{'connected' if self._conn else 'disconnected'}>"
        )

    def step(self) -> int:
        """Apply one batch; returns its size in lines (0: the log is all applied).

        Raises what the database raised (nothing of the batch is then committed)."""
        if self._conn is None:
            self._conn = self._connect()
        if self.committed is None:
            self._load_cursor(self._conn)
        self._fill()
        if not self._lines:
            self._advanced(self._read_to)  # nothing pending: the log read so far is applied
            return 0
        size = self._take()
        lines, end = self._lines[:size], _unpack(self._ends[size - 1])
        try:
            done = self._write(self._prepare(lines), end)
        except Exception as exc:
            if not self._refused(exc):
                raise
            done = self._write_singly(lines, self._ends[:size])
        if done:
            del self._lines[:size], self._ends[:size]
        return size

    def disconnect(self) -> None:
        """Close the connection (after an error: the next step opens a new one)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:  # a connection already broken: nothing more to do
                log.debug("journal: closing the follower's connection: %s", self._explain(exc))

    def _load_cursor(self, conn: WriteConnection) -> None:
        committed = conn.cursor(self.wal_id) or Position(0, 0)
        self.committed = self._read_to = committed
        self._lines.clear()
        self._ends.clear()
        self._advanced(committed)

    def _prepare(self, lines: list[bytes]) -> Batch:
        batch = Batch(objective=self.objective)
        for first in range(0, len(lines), _SLICE):
            prepare(lines[first : first + _SLICE], self.wal_id, batch)
            self.pause()
        return batch

    def _write(self, batch: Batch, end: Position) -> bool:
        assert self._conn is not None
        written = self._conn.write(
            batch, wal_id=self.wal_id, start=self.committed, end=end, pause=self.pause
        )
        if not written:
            # the cursor is not where we left it: a predecessor's last commit landed
            # after we read it.  Start again from the database's position.
            log.info("journal: cursor of %s moved underneath; reloading", self.wal_id)
            self.committed = None
            return False
        self.batches += 1
        self.events += batch.events
        self.skipped += batch.skipped
        self.dropped += batch.dropped
        self.committed = end
        self._advanced(end)
        if end.segment > self._pruned_to:
            self.reader.prune(end)
            self._pruned_to = end.segment
        return True

    def _write_singly(self, lines: list[bytes], ends: list[int]) -> bool:
        """The database refused a batch: write its lines one by one, dropping (and
        logging) only those it refuses on their own."""
        for line, packed in zip(lines, ends, strict=True):
            end = _unpack(packed)
            try:
                alone = prepare([line], self.wal_id, Batch(objective=self.objective))
                if not self._write(alone, end):
                    return False
            except Exception as exc:
                if not self._refused(exc):
                    raise
                self.dropped += 1
                log.error(
                    "journal: the database refused %s at %s, dropped: %s",
                    describe(line),
                    end,
                    self._explain(exc),
                )
                if not self._write(Batch(), end):
                    return False
        return True

    def _fill(self) -> None:
        """Read the log until a batch of lines is pending or the log is exhausted."""
        while len(self._lines) < self.batch:
            lines, end = self.reader.read(self._read_to, _READ_BYTES)
            if not lines:
                self._read_to = max(self._read_to, end)
                return
            self._ends.extend(_positioned(lines, self._read_to, end))
            self._lines.extend(lines)
            self._read_to = end

    def _take(self) -> int:
        """The size of the next batch: up to ``batch`` lines, never split inside one
        position."""
        ends = self._ends
        size = min(self.batch, len(ends))
        while size < len(ends) and ends[size] == ends[size - 1]:
            size += 1
        return size

    def _advanced(self, position: Position) -> None:
        if position > self.seen:
            self.seen = position
        self._on_progress()


@dataclass(frozen=True, slots=True)
class Settings:
    """What the gateway tells its follower process (the first line of its input)."""

    wal_dir: str
    wal_id: str
    target: Target = field(repr=False)  # may hold a password
    batch: int = 1000
    linger: float = 0.1
    idle_interval: float = 0.1
    backoff: tuple[float, float] = (0.1, 5.0)
    nice: int = 0
    objective: float = DEFAULT_OBJECTIVE  # the status page's, for its traffic figures

    def to_line(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> Settings:
        data = json.loads(line)
        data["backoff"] = tuple(data["backoff"])
        return cls(**data)


class Channel:
    """The follower's side of its pipes: commands in, messages out."""

    def __init__(self, commands: int, messages: BinaryIO, pending: bytes = b"") -> None:
        self._commands, self._messages = commands, messages
        self._buffer = b""
        self.hurry = self.stopping = self.orphaned = False
        self._take(pending)

    def send(self, message: dict[str, Any]) -> None:
        try:
            self._messages.write(json.dumps(message).encode() + b"\n")
            self._messages.flush()
        except (BrokenPipeError, ValueError):  # the gateway is gone
            self.orphaned = True

    def wait(self, seconds: float, *, for_hurry: bool = True) -> None:
        """Wait up to ``seconds`` for a command (or only for ``stop`` and the end)."""
        deadline = time.monotonic() + seconds
        while not (self.stopping or self.orphaned or (for_hurry and self.hurry)):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._commands], [], [], left)[0]:
                return
            self._read()

    def _read(self) -> None:
        data = os.read(self._commands, 4096)
        if not data:
            self.orphaned = True  # the gateway closed our input: it is gone
            return
        self._take(data)

    def _take(self, data: bytes) -> None:
        *commands, self._buffer = (self._buffer + data).split(b"\n")
        for command in commands:
            if command == b"hurry":
                self.hurry = True
            elif command == b"stop":
                self.stopping = True


class _Relay(logging.Handler):
    """Hands what the follower logs to the gateway, which logs it as its own."""

    def __init__(self, channel: Channel) -> None:
        super().__init__(logging.INFO)
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        self.channel.send({"t": "log", "level": record.levelno, "message": message})


class FollowerProcess:
    """The follower process's loop: when to step, backoff, and what to report."""

    def __init__(
        self, settings: Settings, channel: Channel, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings, self.channel, self.clock = settings, channel, clock
        password = settings.target.get("arguments", {}).get("password")
        self.follower = Follower(
            LogReader(settings.wal_dir),
            functools.partial(connect, settings.target),
            wal_id=settings.wal_id,
            batch=settings.batch,
            explain=functools.partial(explain, password=password),
            pause=Courtesy(),
            on_progress=self._reachable,
            objective=settings.objective,
        )
        self._explain = functools.partial(explain, password=password)
        self.db_up, self.last_error, self.outages, self.down_since = True, "", 0, 0.0
        self._reported: dict[str, Any] = {}

    def run(self) -> None:
        settings, channel, follower = self.settings, self.channel, self.follower
        delay, idle = settings.backoff[0], settings.idle_interval
        while not channel.orphaned:
            try:
                applied = follower.step()
            except Exception as exc:
                follower.disconnect()
                if channel.stopping:
                    break  # stopping with the database away: the log keeps the rest
                self._outage(exc)
                self._report()
                channel.wait(delay, for_hurry=False)
                delay = min(delay * 2, settings.backoff[1])
                continue
            delay = settings.backoff[0]
            self._report()
            if applied:
                idle = settings.idle_interval
                if applied < follower.batch and not (channel.hurry or channel.stopping):
                    channel.wait(settings.linger)  # gather: one transaction for all of it
                continue  # (behind by a whole batch: the next one at once)
            channel.hurry = False  # all that was there is applied
            if channel.stopping:
                break
            channel.wait(idle)
            # a log that stays idle is looked at less and less often (flush() still gets
            # an answer at once: it sends hurry)
            idle = min(idle * 2, max(settings.idle_interval, _IDLE_MAX))
        follower.disconnect()

    def _reachable(self) -> None:
        if not self.db_up:
            log.warning(
                "journal: database back after %.1fs; replaying the spool",
                self.clock() - self.down_since,
            )
            self.db_up, self.last_error = True, ""

    def _outage(self, exc: Exception) -> None:
        self.last_error = self._explain(exc)
        if self.db_up:  # once per outage, not once per retry
            self.db_up, self.down_since = False, self.clock()
            self.outages += 1
            log.warning(
                "journal: database unreachable (%s); spooling to %s",
                self.last_error,
                self.settings.wal_dir,
            )

    def state(self) -> dict[str, Any]:
        follower = self.follower
        return {
            "t": "state",
            "seen": str(follower.seen),
            "committed": None if follower.committed is None else str(follower.committed),
            "batches": follower.batches,
            "events": follower.events,
            "skipped": follower.skipped,
            "dropped": follower.dropped,
            "db_up": self.db_up,
            "last_error": self.last_error,
            "outages": self.outages,
            "down_since": None if self.db_up else self.down_since,
        }

    def _report(self) -> None:
        state = self.state()
        if state != self._reported:
            self.channel.send(state)
            self._reported = state


def main() -> int:
    """The follower process: settings on the first input line, then the protocol."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    spare_cores()  # a pinned gateway keeps its cores: the follower's work is on the others
    # messages go to the original standard output; anything else printed, to stderr
    messages = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    commands = sys.stdin.fileno()
    first = b""
    while not first.endswith(b"\n"):
        data = os.read(commands, 65536)
        if not data:
            return 0  # the gateway went away before saying anything
        first += data
    line, _, rest = first.partition(b"\n")
    settings = Settings.from_line(line)
    if settings.nice:
        os.nice(settings.nice)
    channel = Channel(commands, messages, pending=rest)
    log.addHandler(_Relay(channel))
    log.setLevel(logging.INFO)
    log.propagate = False
    FollowerProcess(settings, channel).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
