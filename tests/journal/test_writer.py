"""The writer: group commits, flush, exactly-once resumption, odd lines, log pruning."""

from __future__ import annotations

import asyncio
import math
import random
from pathlib import Path

import orjson
import pytest

from standby.errors import JournalUnavailable
from standby.journal.drivers import Target
from standby.journal.journal import Journal
from standby.journal.sql import SQLStore
from standby.journal.wal import WriteAheadLog
from standby.journal.writer import JournalWriter
from tests.journal.conftest import Rig, rows


async def test_n_events_take_at_most_n_over_batch_transactions(rig: Rig) -> None:
    for i in range(1250):
        rig.request(f"r{i:05d}")  # acc + fin: 2500 events
    writer = rig.writer(batch=1000)
    await writer.start()
    await writer.flush()
    assert writer.events == 2500
    assert writer.batches <= math.ceil(2500 / 1000)
    assert len(await rows(rig.store)) == 1250


async def test_flush_returns_once_what_was_appended_is_committed(rig: Rig) -> None:
    writer = rig.writer()
    await writer.start()
    for round_ in range(3):
        rig.request(f"r{round_}", text=["a", "b"])
        await writer.flush()
        assert len(await rows(rig.store)) == round_ + 1
    status = writer.status()
    assert status["db_up"] and status["lag_bytes"] == 0 and status["events"] == 12
    assert status["committed"] == str(rig.wal.end)


async def test_commits_are_grouped_but_flush_does_not_wait_for_it(rig: Rig) -> None:
    writer = rig.writer(linger=60.0)  # longer than flush's own deadline
    await writer.start()
    for i in range(3):
        rig.request(f"r{i}")
        await writer.flush(timeout=2.0)
        assert len(await rows(rig.store)) == i + 1
    await writer.stop(timeout=2.0)


async def test_flush_without_a_running_writer_is_an_error(rig: Rig) -> None:
    rig.request("r1")
    with pytest.raises(JournalUnavailable):
        await rig.writer().flush()


async def test_a_restarted_writer_resumes_at_the_committed_position(rig: Rig) -> None:
    first = rig.writer()
    await first.start()
    rig.request("r1", text=["x"])
    await first.flush()
    await first.stop()
    rig.request("r2", text=["y"])
    second = rig.writer()
    await second.start()
    await second.flush()
    assert second.events == 3  # r2 only: acc, dlt, fin
    assert {r["rid"]: r["content_sent"] for r in await rows(rig.store)} == {"r1": "x", "r2": "y"}


async def _committed(writer: JournalWriter, batches: int) -> None:
    for _ in range(100_000):  # yields to the loop, not a timed sleep
        if writer.batches >= batches:
            return
        await asyncio.sleep(0)


async def test_writers_cancelled_anywhere_lose_and_repeat_nothing(rig: Rig) -> None:
    chance = random.Random(7)
    expected: dict[str, str] = {}
    for round_ in range(12):
        for i in range(40):
            rid = f"r{round_:02d}-{i:02d}"
            parts = [f"{rid}:{k};" for k in range(3)]
            rig.request(rid, text=parts, finish=i % 3 != 0)
            expected[rid] = "".join(parts)
        writer = rig.writer(batch=chance.choice([1, 7, 50]))
        await writer.start()
        # let it commit a few batches (or none), then land the cancellation anywhere:
        # between batches, mid-transaction, mid-commit
        await _committed(writer, chance.randrange(0, 4))
        for _ in range(chance.randrange(0, 40)):
            await asyncio.sleep(0)
        await writer.stop(timeout=0)  # a crash
    final = rig.writer()
    await final.start()
    await final.flush()
    assert {r["rid"]: r["content_sent"] for r in await rows(rig.store)} == expected


def _tear(segment: Path) -> None:
    with open(segment, "ab") as handle:  # a crash in the middle of an append
        handle.write(b'{"e":"acc","rid":"torn","at":1')


async def test_undecodable_and_torn_lines_are_skipped_and_counted(rig: Rig) -> None:
    rig.request("r1")
    rig.wal.write(b"not json\n")
    rig.wal.close()
    _tear(sorted(rig.wal.directory.glob("wal-*.jsonl"))[-1])
    rig.wal = WriteAheadLog(rig.wal.directory)
    rig.journal = Journal(rig.wal)
    rig.request("r2")
    writer = rig.writer()
    await writer.start()
    await writer.flush()
    assert writer.skipped == 2
    assert [r["rid"] for r in await rows(rig.store)] == ["r1", "r2"]


async def test_segments_behind_the_database_are_deleted(rig: Rig) -> None:
    rig.wal.close()
    rig.wal = WriteAheadLog(rig.wal.directory, segment_bytes=2000)
    rig.journal = Journal(rig.wal)
    for i in range(30):
        rig.request(f"r{i:02d}")
    assert len(rig.wal.segments()) > 5
    writer = rig.writer(batch=10)
    await writer.start()
    await writer.flush()
    assert len(await rows(rig.store)) == 30
    assert rig.wal.segments() == [rig.wal.end.segment]


class _Mangling(SQLStore):
    """A real store whose follower is handed a value no driver can bind."""

    def writer_target(self) -> Target:
        return {**super().writer_target(), "factory": "tests.journal.doubles:mangling"}


async def test_an_event_the_database_refuses_is_dropped_alone(rig: Rig) -> None:
    rig.request("before", text=["a"])
    rig.request("poison", text=["b"])
    rig.request("after", text=["c"])
    writer = JournalWriter(rig.wal, _Mangling(rig.store.engine), wal_id=rig.wal_id)
    rig.writers.append(writer)
    await writer.start()
    await writer.flush()
    assert writer.dropped == 1 and writer.status()["db_up"]
    found = {r["rid"]: (r["state"], r["content_sent"]) for r in await rows(rig.store)}
    assert found == {
        "before": ("completed", "a"),
        "poison": ("completed", None),
        "after": ("completed", "c"),
    }


async def test_a_lone_surrogate_in_a_body_does_not_lose_the_request(rig: Rig) -> None:
    rig.journal.accepted(
        "r1",
        endpoint="chat",
        route="m",
        model="m",
        stream=False,
        raw_body=b'{"messages":[{"content":"x\\ud800y"}]}',
        metadata=None,
        store=True,
    )
    writer = rig.writer()
    await writer.start()
    await writer.flush()
    [row] = await rows(rig.store)
    assert orjson.loads(row["request_json"]) == {"messages": [{"content": "x\ufffdy"}]}
    assert writer.skipped == 0
