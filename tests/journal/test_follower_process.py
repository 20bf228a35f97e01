"""The follower process: start and stop, errors raised in it, draining at shutdown, a
follower that dies or loses its gateway, lingering, and a request path that never waits
for it."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from standby.journal.drivers import Target
from standby.journal.follower import Settings
from standby.journal.sql import SQLStore
from standby.journal.writer import JournalWriter
from tests.journal.conftest import Rig, rows

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too: it only waits for its parent to collect its status
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


async def _eventually(check: object, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_start_runs_one_follower_process_and_stop_ends_it(rig: Rig) -> None:
    writer = rig.writer()
    await writer.start()
    await writer.start()  # a second start is a no-op
    rig.request("r1")
    await writer.flush()
    pid = writer.pid
    assert pid is not None and pid != os.getpid() and _alive(pid)
    await writer.stop()
    assert writer.pid is None and not _alive(pid)
    await writer.stop()  # stopping twice is harmless


async def test_a_stopped_writer_starts_again_where_it_was(rig: Rig) -> None:
    writer = rig.writer()
    await writer.start()
    rig.request("r1")
    await writer.flush()
    await writer.stop()
    rig.request("r2")
    await writer.start()
    await writer.flush()
    assert [r["rid"] for r in await rows(rig.store)] == ["r1", "r2"]


class _Flaky(SQLStore):
    """A real store whose follower's first connections fail, then loses one
    connection in the middle of a batch (``tests.journal.doubles.flaky``)."""

    def writer_target(self) -> Target:
        target = super().writer_target()
        return {**target, "factory": "tests.journal.doubles:flaky", "failures": 3}


async def test_an_error_in_the_follower_is_the_last_error_and_is_retried(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    store = _Flaky(rig.store.engine)
    writer = JournalWriter(rig.wal, store, wal_id=rig.wal_id, backoff=(0.05, 0.05))
    rig.writers.append(writer)
    rig.request("r1", text=["a", "b"])
    rig.request("r2")
    await writer.start()
    await _eventually(lambda: writer.last_error)
    status = writer.status()
    assert not status["db_up"] and status["last_error"].startswith("RuntimeError: boom")
    await writer.flush(timeout=10)
    status = writer.status()
    # two outages: three refused connections (one outage, however many retries), then
    # a connection lost mid-batch; five connections in all
    assert status["db_up"] and status["last_error"] is None and status["outages"] == 2
    found = {r["rid"]: r["content_sent"] for r in await rows(rig.store)}
    assert found == {"r1": "ab", "r2": None}  # the broken batch applied once, not twice
    messages = [r.getMessage() for r in caplog.records if r.name == "standby.journal"]
    assert len([m for m in messages if "double: connection" in m]) == 5
    assert len([m for m in messages if "unreachable" in m]) == 2  # once per outage
    assert any("lost mid-batch" in m for m in messages)


async def test_stop_drains_what_was_appended(rig: Rig) -> None:
    writer = rig.writer(linger=30.0, idle_interval=30.0)  # nothing would be committed soon
    await writer.start()
    await writer.flush()  # the follower has started and waits
    for i in range(2000):
        rig.request(f"r{i:04d}", text=["x"])
    await writer.stop(timeout=20)
    assert len(await rows(rig.store)) == 2000
    assert await rig.store.cursor(rig.wal_id) == rig.wal.end


async def test_stop_at_once_is_a_crash_and_the_next_writer_replays(rig: Rig) -> None:
    writer = rig.writer(linger=30.0, idle_interval=30.0)
    await writer.start()
    await writer.flush()
    for i in range(100):
        rig.request(f"r{i:03d}")
    await writer.stop(timeout=0)
    assert await rows(rig.store) == []  # killed: nothing drained
    successor = rig.writer()
    await successor.start()
    await successor.flush()
    assert len(await rows(rig.store)) == 100


async def test_a_follower_that_dies_is_started_again(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    writer = rig.writer(backoff=(0.05, 0.05))
    await writer.start()
    rig.request("r1")
    await writer.flush()
    first = writer.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    rig.request("r2")
    await _eventually(lambda: writer.restarts == 1 and writer.pid not in (None, first))
    await writer.flush()
    assert [r["rid"] for r in await rows(rig.store)] == ["r1", "r2"]
    assert any("exited with status -9" in r.getMessage() for r in caplog.records)


async def test_the_follower_ignores_signals_to_its_group_and_drains_on_stop(rig: Rig) -> None:
    writer = rig.writer(linger=30.0, idle_interval=30.0)
    await writer.start()
    await writer.flush()
    pid = writer.pid
    assert pid is not None
    for signum in (signal.SIGTERM, signal.SIGINT):  # what a service manager or ^C send
        os.kill(pid, signum)
    rig.request("r1")
    await asyncio.sleep(0.2)
    assert _alive(pid) and writer.restarts == 0
    await writer.stop()
    assert len(await rows(rig.store)) == 1


async def test_a_follower_whose_gateway_is_gone_exits(rig: Rig) -> None:
    settings = Settings(str(rig.wal.directory), rig.wal_id, rig.store.writer_target())
    follower = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "standby.journal.follower",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert follower.stdin is not None and follower.stdout is not None
    follower.stdin.write(settings.to_line())
    rig.request("r1")
    first = await asyncio.wait_for(follower.stdout.readline(), 10)  # its first report
    assert b'"t": "state"' in first
    follower.stdin.close()  # what the gateway's death does to it
    assert await asyncio.wait_for(follower.wait(), 10) == 0


async def test_a_trickle_is_grouped_into_few_transactions(rig: Rig) -> None:
    writer = rig.writer(linger=0.2, idle_interval=0.2)
    await writer.start()
    await writer.flush()
    started = time.monotonic()
    for i in range(20):
        rig.request(f"r{i:02d}")
        await asyncio.sleep(0.025)
    elapsed = time.monotonic() - started
    await writer.flush()
    # one transaction per linger at most (plus the one flush forces)
    assert writer.batches <= elapsed / 0.2 + 2
    assert len(await rows(rig.store)) == 20


async def test_appending_never_waits_for_a_locked_database(rig: Rig) -> None:
    if rig.store.engine.dialect.name != "sqlite":
        pytest.skip("holds SQLite's write lock")
    writer = rig.writer()
    await writer.start()
    rig.request("r0")
    await writer.flush()
    database = rig.store.engine.url.database
    assert database is not None
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the follower's next transaction waits for this
    try:
        slowest = 0.0
        for i in range(1, 200):
            before = time.perf_counter()
            rig.request(f"r{i:03d}")
            slowest = max(slowest, time.perf_counter() - before)
            await asyncio.sleep(0)
        # one write each, whatever the database does: far below the 5 s a wait for
        # SQLite's lock would take (a loaded machine's scheduler alone may take a few ms)
        assert slowest < 1.0
        with pytest.raises(Exception, match="behind"):
            await writer.flush(timeout=0.3)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await writer.flush(timeout=10)
    assert len(await rows(rig.store)) == 200
