"""F22 on SQLite: the database becomes unreachable, the log spools, and it is replayed.

Tests run as root, for whom file modes do not block writes; so the database's directory
is moved away and a regular file put in its place, which no user can open a database
under.  Pooled connections would keep writing to the moved file through their open
descriptors, so the pool is emptied, as a restarted connection would be.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from standby.errors import JournalUnavailable
from standby.journal.journal import Journal
from standby.journal.migrate import migrate
from standby.journal.sql import SQLStore
from standby.journal.wal import WriteAheadLog
from standby.journal.writer import JournalWriter
from tests.journal.conftest import rows


def _journal(journal: Journal, first: int, last: int) -> None:
    for i in range(first, last):
        rid = f"r{i:03d}"
        journal.accepted(
            rid,
            endpoint="chat",
            route="m",
            model="m",
            stream=True,
            raw_body=b'{"model":"m"}',
            metadata=None,
            store=True,
        )
        journal.delta(rid, f"{rid}!")
        journal.completed(
            rid,
            completion_id=f"c{rid}",
            provider="p",
            model="m",
            response=b'{"object":"chat.completion"}',
            usage=None,
            attempts=[],
        )


async def test_writes_fail_then_the_spool_is_replayed_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "db"
    store = SQLStore.from_url(f"sqlite:///{home / 'journal.db'}")
    await migrate(store.engine)
    wal = WriteAheadLog(tmp_path / "wal")
    writer = JournalWriter(wal, store, wal_id="w", backoff=(0.01, 0.05))
    journal = Journal(wal)
    await writer.start()
    try:
        _journal(journal, 0, 10)
        await writer.flush()

        home.rename(tmp_path / "db.away")
        home.write_text("not a directory")
        await store.engine.dispose()
        _journal(journal, 10, 40)  # the request path neither fails nor waits
        with pytest.raises(JournalUnavailable, match="unable to open database file"):
            await writer.flush(timeout=0.5)
        assert not writer.status()["db_up"] and writer.status()["lag_bytes"] > 0

        home.unlink()
        (tmp_path / "db.away").rename(home)
        await writer.flush(timeout=10)
        status = writer.status()
        assert status["db_up"] and status["outages"] == 1 and status["lag_bytes"] == 0
        found = await rows(store)
        assert [r["rid"] for r in found] == [f"r{i:03d}" for i in range(40)]
        assert all(r["content_sent"] == r["rid"] + "!" and r["state"] == "completed" for r in found)
        warnings = [r.getMessage() for r in caplog.records if r.name == "standby.journal"]
        assert len(warnings) == 2  # one when it went away (however many retries), one back
        assert "unreachable" in warnings[0] and "back after" in warnings[1]
    finally:
        await writer.stop()
        wal.close()
        await store.close()
