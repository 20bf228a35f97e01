"""F22 on PostgreSQL: the server is really stopped while requests keep being journaled,
then started again; the spooled log is replayed into it, once.

The server is always started again (``finally``) and waited for before the test ends.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from standby.errors import JournalUnavailable
from standby.journal.journal import Journal
from standby.journal.migrate import migrate
from standby.journal.sql import SQLStore
from standby.journal.wal import WriteAheadLog
from standby.journal.writer import JournalWriter
from tests.journal.conftest import rows
from tests.journal.test_spool_sqlite import _journal

_CLUSTERS = Path("/etc/postgresql")


async def _run(*command: str) -> int:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await process.wait()


async def _ready() -> None:
    for _ in range(300):  # a readiness poll of the server, up to 30 s
        if await _run("pg_isready", "-q", "-h", "127.0.0.1") == 0:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("PostgreSQL did not come back")


def _local_cluster() -> list[str]:
    """``pg_ctlcluster`` arguments for the local server (its version found on disk)."""
    if shutil.which("pg_ctlcluster") is None or not _CLUSTERS.is_dir():
        pytest.skip("no local PostgreSQL cluster to stop")
    version = sorted(os.listdir(_CLUSTERS), key=float)[-1]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]


@pytest.fixture
async def cluster() -> AsyncIterator[list[str]]:
    command = _local_cluster()
    try:
        yield command
    finally:
        await _run(*command, "start")
        await _ready()


async def test_server_stopped_and_started_again(
    pg_database: str, tmp_path: Path, cluster: list[str]
) -> None:
    store = SQLStore.from_url(pg_database)
    await migrate(store.engine)
    wal = WriteAheadLog(tmp_path / "wal")
    writer = JournalWriter(wal, store, wal_id="w", backoff=(0.01, 0.2))
    journal = Journal(wal)
    await writer.start()
    try:
        _journal(journal, 0, 10)
        await writer.flush()

        assert await _run(*cluster, "stop", "-m", "fast") == 0
        _journal(journal, 10, 40)  # the request path neither fails nor waits
        with pytest.raises(JournalUnavailable):
            await writer.flush(timeout=0.5)
        assert not writer.status()["db_up"]

        assert await _run(*cluster, "start") == 0
        await _ready()
        await writer.flush(timeout=15)
        assert writer.status()["db_up"] and writer.status()["outages"] == 1
        found = await rows(store)
        assert [r["rid"] for r in found] == [f"r{i:03d}" for i in range(40)]
        assert all(r["content_sent"] == r["rid"] + "!" for r in found)
    finally:
        await writer.stop()
        wal.close()
        await store.close()
