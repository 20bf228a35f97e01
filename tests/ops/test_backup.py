"""``backup``: a consistent SQLite copy while the journal keeps writing; pg_dump advice."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from standby.journal.sql import SQLStore
from standby.journal.store import RequestRow
from standby.ops.backup import BackupError, backup, sqlite_path
from tests.ops import converse, database, eventually, journal_stack


async def rows_of(url: str) -> list[RequestRow]:
    store = SQLStore.from_url(url)
    try:
        return await store.list_requests(limit=100_000)
    finally:
        await store.close()


async def test_backup_taken_during_writes_is_a_consistent_valid_database(tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    async with database("sqlite", tmp_path) as url, journal_stack(url, tmp_path / "wal") as stack:
        converse(stack, 60)
        await stack.flush()
        stop = asyncio.Event()

        async def traffic() -> None:
            while not stop.is_set():
                converse(stack, 6)
                await asyncio.sleep(0.002)

        writing = asyncio.create_task(traffic())
        await eventually(lambda: len(stack.written) >= 90)  # writes under way
        report = await backup(url, copy)
        after = len(stack.written)
        await eventually(lambda: len(stack.written) >= after + 30)  # and going on after
        stop.set()
        await writing
        await stack.flush()
        source = {row.rid: row for row in await stack.store.list_requests(limit=100_000)}

    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not [p for p in os.listdir(tmp_path) if ".partial" in p]
    copied = await rows_of(f"sqlite:///{copy}")
    assert report.path == copy and report.rows["requests"] == len(copied)
    assert 60 <= len(copied) < len(source)  # a snapshot: writes went on after it
    for row in copied:  # every copied row is the source's row, or an earlier state of it
        assert row.rid in source
        if row.state != "accepted":
            assert row == source[row.rid]
    # the snapshot is a prefix of the log: no newer request without all the older ones
    newest = max(row.received_at for row in copied)
    older = {rid for rid, row in source.items() if row.received_at <= newest}
    assert older == {row.rid for row in copied}


async def test_backup_of_a_quiet_journal_has_exactly_its_rows(tmp_path: Path) -> None:
    async with database("sqlite", tmp_path) as url, journal_stack(url, tmp_path / "wal") as stack:
        converse(stack, 25)
        await stack.flush()
        first = await backup(url, tmp_path / "copy.db")
        again = await backup(url, tmp_path / "copy.db")  # an existing backup is replaced
        shelf = tmp_path / "shelf"
        shelf.mkdir()
        stamped = await backup(url, shelf)
        expected = await stack.store.list_requests(limit=1000)
    assert first.rows["requests"] == again.rows["requests"] == 25
    assert await rows_of(f"sqlite:///{tmp_path / 'copy.db'}") == expected
    assert stamped.path.parent == shelf and stamped.path.name.startswith("standby-journal-")
    assert await rows_of(f"sqlite:///{stamped.path}") == expected
    assert first.rows["journal_cursor"] == 1


async def test_a_missing_database_is_reported_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    with pytest.raises(BackupError, match="no journal database at"):
        await backup(f"sqlite:///{missing}", tmp_path / "copy.db")
    assert not missing.exists() and not (tmp_path / "copy.db").exists()


async def test_backing_up_onto_itself_is_refused(tmp_path: Path) -> None:
    async with database("sqlite", tmp_path) as url, journal_stack(url, tmp_path / "wal"):
        with pytest.raises(BackupError, match="itself"):
            await backup(url, sqlite_path(url))


def test_postgresql_is_refused_with_the_pg_dump_command_and_no_password() -> None:
    with pytest.raises(BackupError) as caught:
        sqlite_path("postgresql+asyncpg://standby:s3cret@db.example:5432/journal")
    message = str(caught.value)
    assert (
        "pg_dump --format=custom --file PATH 'postgresql://standby:***@db.example:5432/"
        "journal'" in message
    )
    assert "s3cret" not in message and "pg_restore" in message


def test_in_memory_and_other_databases_are_refused() -> None:
    with pytest.raises(BackupError, match="in-memory"):
        sqlite_path("sqlite://")
    with pytest.raises(BackupError, match="'mysql'"):
        sqlite_path("mysql://u@h/db")


@pytest.mark.skipif(
    not shutil.which("pg_dump") or not shutil.which("pg_restore"),
    reason="pg_dump/pg_restore not installed",
)
async def test_the_advised_pg_dump_command_backs_up_a_postgresql_journal(tmp_path: Path) -> None:
    async with (
        database("postgresql", tmp_path) as url,
        journal_stack(url, tmp_path / "wal") as stack,
    ):
        converse(stack, 5)
        await stack.flush()
        with pytest.raises(BackupError) as caught:
            await backup(url, tmp_path / "unused")
        command = next(
            line.strip()
            for line in str(caught.value).splitlines()
            if line.strip().startswith("pg_dump")
        )
        dump = tmp_path / "journal.dump"
        args = [str(dump) if arg == "PATH" else arg for arg in shlex.split(command)]
        done = await asyncio.to_thread(
            subprocess.run, args, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0, done.stderr
    listing = await asyncio.to_thread(
        subprocess.run,
        ["pg_restore", "--list", str(dump)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "TABLE DATA public requests" in listing.stdout
