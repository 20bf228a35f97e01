"""After a crash: the requests a dead process had accepted but never finished.

Each replica has its own write-ahead log, named by a random id kept in
``<wal_dir>/wal_id``; every row records the log it came from.  At startup, once the
writer has applied the log the previous run left behind, a row of this log still in
state ``accepted`` was cut off by the crash: it becomes ``interrupted``, keeping the
stream text that had been sent (``content_sent``).

Rows the current run accepts must not be caught, so pass ``before`` = the time this run
started (or run recovery before serving)::

    started = time.time()
    await writer.start()
    ...serve...
    await recover_after_replay(writer, store, before=started)  # in a background task
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from standby.journal.sql import SQLStore
from standby.journal.writer import JournalWriter

log = logging.getLogger("standby.journal")

_ID_FILE = "wal_id"


def load_wal_id(wal_dir: str | Path) -> str:
    """This log's id, created (atomically) on first use."""
    directory = Path(wal_dir)
    path = directory / _ID_FILE
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    directory.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_hex(8)
    temporary = directory / f".{_ID_FILE}.{fresh}"
    temporary.write_text(fresh + "\n")
    try:
        os.link(temporary, path)  # fails if a concurrent first use won: keep theirs
    except FileExistsError:
        fresh = path.read_text().strip()
    finally:
        temporary.unlink()
    return fresh


async def recover(store: SQLStore, wal_id: str, *, before: float | None = None) -> int:
    """Mark the rows of ``wal_id`` left ``accepted`` by a previous run as interrupted.

    Call it only once the writer has applied the whole log that run left
    (``JournalWriter.caught_up()``); returns how many rows it marked.
    """
    count = await store.interrupt_accepted(wal_id, before=before)
    if count:
        log.warning(
            "journal: %d requests were cut off by the last shutdown; marked interrupted", count
        )
    return count


async def recover_after_replay(writer: JournalWriter, store: SQLStore, *, before: float) -> int:
    """Wait for the writer to absorb the previous run's log, then ``recover``.

    Waits through a database outage (the writer keeps retrying), so run it as a task.
    """
    await writer.caught_up()
    return await recover(store, writer.wal_id, before=before)
