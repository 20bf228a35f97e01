"""The journal's events of one pass of the event loop leave in one ``write`` at its end,
and a connection's bytes never reach the socket before the events written in their pass."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from standby.journal.journal import Journal
from standby.journal.wal import WriteAheadLog
from standby.web.writes import CoalescingTransport

BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'


class CountingLog(WriteAheadLog):
    """The real log, counting its ``write`` calls."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        super().write(data)


def logged(directory: Path) -> list[bytes]:
    """The log's lines as the follower would read them from disk."""
    return b"".join(
        path.read_bytes() for path in sorted(directory.glob("wal-*.jsonl"))
    ).splitlines()


def accept(journal: Journal, rid: str) -> None:
    journal.accepted(
        rid,
        endpoint="chat",
        route="m",
        model="m",
        stream=False,
        raw_body=BODY,
        metadata=None,
        store=True,
    )


def complete(journal: Journal, rid: str) -> None:
    journal.completed(
        rid,
        completion_id=f"c-{rid}",
        provider="p",
        model="m",
        response=b'{"id":"c"}',
        usage=None,
        attempts=[],
    )


async def test_events_of_one_pass_leave_in_one_write_at_its_end(tmp_path: Path) -> None:
    wal = CountingLog(tmp_path)
    journal = Journal(wal, gather=True)
    accept(journal, "r1")
    accept(journal, "r2")
    complete(journal, "r1")
    assert wal.writes == 0 and logged(tmp_path) == []
    await asyncio.sleep(0)  # the pass ends
    assert wal.writes == 1
    assert [line.split(b'"rid":"')[1][:2] for line in logged(tmp_path)] == [b"r1", b"r2", b"r1"]
    complete(journal, "r2")  # the next pass: a write of its own
    await asyncio.sleep(0)
    assert wal.writes == 2 and len(logged(tmp_path)) == 4


async def test_flush_writes_what_was_gathered_at_once(tmp_path: Path) -> None:
    wal = CountingLog(tmp_path)
    journal = Journal(wal, gather=True)
    accept(journal, "r1")
    journal.flush()
    assert wal.writes == 1 and len(logged(tmp_path)) == 1
    await asyncio.sleep(0)  # the flush scheduled for the pass finds nothing left
    journal.flush()
    assert wal.writes == 1


def test_outside_an_event_loop_an_event_is_written_at_once(tmp_path: Path) -> None:
    wal = CountingLog(tmp_path)
    journal = Journal(wal, gather=True)
    accept(journal, "r1")
    accept(journal, "r2")
    assert wal.writes == 2 and len(logged(tmp_path)) == 2


def test_without_gathering_every_event_is_its_own_write(tmp_path: Path) -> None:
    wal = CountingLog(tmp_path)
    journal = Journal(wal)
    accept(journal, "r1")
    complete(journal, "r1")
    assert wal.writes == 2


async def test_a_failed_write_counts_every_event_it_carried(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path)
    journal = Journal(wal, gather=True)
    accept(journal, "r1")
    complete(journal, "r1")
    wal.close()  # the write fails (EBADF): logged and counted, serving goes on
    await asyncio.sleep(0)
    assert journal.lost == 2


class Checked(asyncio.Transport):
    """A client's socket that looks at the log at the moment it is given bytes."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self.seen: list[tuple[bytes, list[bytes]]] = []

    def write(self, data: Any) -> None:
        self.seen.append((bytes(data), logged(self.directory)))

    def is_closing(self) -> bool:
        return False


async def test_a_clients_bytes_never_leave_before_the_events_of_their_pass(
    tmp_path: Path,
) -> None:
    wal = WriteAheadLog(tmp_path)
    journal = Journal(wal, gather=True)
    socket = Checked(tmp_path)
    connection = CoalescingTransport(socket, asyncio.get_running_loop(), journal.flush)
    # a stream's first bytes, written before anything was journaled in this pass: the
    # connection's hand-over is scheduled before the journal's
    connection.write(b"data: first\n\n")
    complete(journal, "r1")  # then the answer's ending, and its last bytes
    connection.write(b"data: [DONE]\n\n")
    await asyncio.sleep(0)
    [(sent, on_disk)] = socket.seen
    assert sent == b"data: first\n\ndata: [DONE]\n\n"
    assert len(on_disk) == 1 and b'"rid":"r1"' in on_disk[0]
