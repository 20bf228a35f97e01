"""``RetentionJob``: prunes only what is older than ``journal.retain``, survives outages."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from standby.journal.sql import SQLStore
from standby.ops.retention import RetentionJob
from tests.ops import KINDS, Clock, converse, database, eventually, journal_stack

DAY = 86400.0


@pytest.mark.parametrize("kind", KINDS)
async def test_run_once_prunes_only_rows_older_than_retain(kind: str, tmp_path: Path) -> None:
    clock = Clock()
    async with (
        database(kind, tmp_path) as url,
        journal_stack(url, tmp_path / "wal", clock) as stack,
    ):
        sent = converse(stack, 10, step=DAY)  # one request a day, ten days
        await stack.flush()
        job = RetentionJob(stack.store, 3 * DAY + 1, clock=clock)
        assert await job.run_once() == 7
        assert await job.run_once() == 0  # nothing more is old enough
        kept = await stack.store.list_requests(limit=100)
        clock.now += DAY
        assert await job.run_once() == 1
    assert [row.rid for row in kept] == [s["rid"] for s in reversed(sent[-3:])]
    assert job.pruned == 8 and "pruned=8" in repr(job)


async def test_retain_zero_keeps_everything(tmp_path: Path) -> None:
    clock = Clock()
    async with (
        database("sqlite", tmp_path) as url,
        journal_stack(url, tmp_path / "wal", clock) as stack,
    ):
        converse(stack, 3, step=365 * DAY)
        await stack.flush()
        assert await RetentionJob(stack.store, 0, clock=clock).run_once() == 0
        assert len(await stack.store.list_requests()) == 3


async def test_run_prunes_every_interval_until_cancelled(tmp_path: Path) -> None:
    clock = Clock()
    async with (
        database("sqlite", tmp_path) as url,
        journal_stack(url, tmp_path / "wal", clock) as stack,
    ):
        converse(stack, 4, step=DAY)
        await stack.flush()
        job = RetentionJob(stack.store, 1.5 * DAY, clock=clock, interval=0.01)
        task = asyncio.create_task(job.run())
        await eventually(lambda: job.pruned == 2)
        clock.now += DAY  # a day later the next round takes one more
        await eventually(lambda: job.pruned == 3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert job.pruned == 3
        assert len(await stack.store.list_requests()) == 1


async def test_an_unreachable_database_is_logged_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a port nothing listens on: every prune fails with a connection error
    store = SQLStore.from_url("postgresql://standby:s3cret@127.0.0.1:9/journal")
    job = RetentionJob(store, DAY, interval=0.01)
    caplog.set_level(logging.WARNING, "standby.journal")
    task = asyncio.create_task(job.run())
    try:
        await eventually(lambda: len(caplog.records) >= 2)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await store.close()
    assert len(caplog.records) >= 2  # it kept trying
    assert job.last_error and "s3cret" not in job.last_error
    assert "prune failed" in caplog.records[0].getMessage()
    assert "s3cret" not in caplog.text


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RetentionJob(SQLStore.from_url("sqlite://"), DAY, interval=0)


async def test_run_waits_until_the_journal_is_ready(tmp_path: Path) -> None:
    clock = Clock()
    async with (
        database("sqlite", tmp_path) as url,
        journal_stack(url, tmp_path / "wal", clock) as stack,
    ):
        converse(stack, 2, step=DAY)
        await stack.flush()
        ready = asyncio.Event()
        job = RetentionJob(stack.store, 0.5 * DAY, clock=clock, interval=0.01, ready=ready.wait)
        task = asyncio.create_task(job.run())
        await asyncio.sleep(0.05)
        assert job.pruned == 0  # the tables might not exist yet: no prune, no warning
        ready.set()
        await eventually(lambda: job.pruned > 0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert job.pruned == 1
