"""Retention: the pruning job that keeps the journal to the plan's ``journal.retain``.

``RetentionJob.run()`` prunes once at start, then every ``interval`` seconds, until it is
cancelled (the app's lifespan starts and cancels it).  A failed prune — the database is
away, say — is logged and tried again next round: retention is never urgent, and the
gateway must keep serving.  ``retain <= 0`` keeps everything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["Prunable", "RetentionJob"]

log = logging.getLogger("standby.journal")


class Prunable(Protocol):
    """The part of ``JournalStore`` retention needs."""

    async def prune(self, older_than: float) -> int: ...


class RetentionJob:
    """Delete journaled requests received more than ``retain`` seconds ago."""

    def __init__(
        self,
        store: Prunable,
        retain: float,
        *,
        clock: Callable[[], float] = time.time,
        interval: float = 3600.0,
        ready: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("the retention interval must be positive")
        self.store = store
        self.retain = retain
        self.clock = clock
        self.interval = interval
        self.ready = ready  # e.g. JournalService.ready: the tables exist from then on
        self.pruned = 0  # rows deleted since the job was made
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return (
            f"RetentionJob(retain={self.retain:g}s, interval={self.interval:g}s, "
            f"pruned={self.pruned}, last_error={self.last_error!r})"
        )

    async def run_once(self) -> int:
        """Prune now; returns how many requests were deleted."""
        if self.retain <= 0:
            return 0
        deleted = await self.store.prune(self.clock() - self.retain)
        self.pruned += deleted
        if deleted:
            log.info("journal retention: pruned %d requests older than %gs", deleted, self.retain)
        return deleted

    async def run(self) -> None:
        """Prune now (once ``ready``) and every ``interval`` seconds, until cancelled."""
        if self.ready is not None:
            await self.ready()
        while True:
            try:
                await self.run_once()
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: next round
                self.last_error = _describe(exc)
                log.warning(
                    "journal retention: prune failed (%s); retrying in %gs",
                    self.last_error,
                    self.interval,
                )
            await asyncio.sleep(self.interval)


def _describe(exc: BaseException) -> str:
    """One line, without the SQL and parameters SQLAlchemy appends to its errors."""
    text = str(exc).split("\n", 1)[0].split("[SQL:", 1)[0].strip()
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
