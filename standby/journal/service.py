"""The journal as one service: log, hot-path sink, database, writer, recovery.

Built from the plan's ``journal`` section and a data directory (the plan's own
directory for ``standby serve``).  ``start()`` returns at once: migrations, the writer
and crash recovery run in a background task that waits out a database outage, while the
gateway serves and the write-ahead log spools every event (F22).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from standby.errors import JournalUnavailable
from standby.journal.journal import Journal
from standby.journal.recovery import load_wal_id, recover_after_replay
from standby.journal.sql import SQLStore
from standby.journal.wal import WriteAheadLog
from standby.journal.writer import JournalWriter
from standby.plan.model import Journal as JournalConfig

log = logging.getLogger("standby.journal")


def journal_url(config: JournalConfig, data_dir: Path) -> str:
    """The database URL; SQLite paths that are relative are taken from the data directory."""
    if not config.url:
        return f"sqlite:///{(data_dir / 'standby.db').resolve()}"
    prefix = "sqlite:///"
    if config.url.startswith(prefix) and not config.url.startswith(prefix + "/"):
        return prefix + str((data_dir / config.url[len(prefix) :]).resolve())
    return config.url


def wal_directory(config: JournalConfig, data_dir: Path) -> Path:
    if not config.wal_dir:
        return data_dir / "standby-wal"
    path = Path(config.wal_dir)
    return path if path.is_absolute() else data_dir / path


class JournalService:
    def __init__(
        self, config: JournalConfig, data_dir: Path, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.url = journal_url(config, data_dir)
        self.wal = WriteAheadLog(wal_directory(config, data_dir), fsync=config.fsync)
        self.wal_id = load_wal_id(self.wal.directory)
        self.store = SQLStore.from_url(self.url)
        self.writer = JournalWriter(
            self.wal, self.store, wal_id=self.wal_id, batch=config.batch, clock=clock
        )
        self.journal = Journal(self.wal, redact=config.redact, wake=self.writer.wake, clock=clock)
        self.recovered: int | None = None  # requests marked interrupted at start-up
        self._started_at = clock()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._prepare(), name="journal-prepare")

    async def _prepare(self) -> None:
        from standby.journal.migrate import migrate  # alembic is needed once, at start-up

        delay = 0.2
        while True:
            try:
                await migrate(self.store.engine)
                break
            except Exception as exc:  # unreachable: keep serving, the log spools
                if delay == 0.2:
                    log.warning(
                        "journal database unreachable (%s); spooling to %s until it returns",
                        self.store.explain(exc),
                        self.wal.directory,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        await self.writer.start()
        self._ready.set()
        self.recovered = await recover_after_replay(
            self.writer, self.store, before=self._started_at
        )

    async def ready(self) -> None:
        """Wait until migrations ran and the writer follows the log."""
        await self._ready.wait()

    async def flush(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Read-your-writes: everything journaled so far is in the database.

        Raises ``JournalUnavailable`` when that takes longer than ``timeout``.
        """
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                raise JournalUnavailable("the journal database is not reachable yet") from None
        await self.writer.flush(timeout)

    def status(self) -> dict[str, Any]:
        status = self.writer.status()
        status["recovered"] = self.recovered
        return status

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.writer.stop()
        await self.store.close()
        self.wal.close()
