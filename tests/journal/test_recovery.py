"""Crash safety (F24): after ``kill -9`` mid-load and a restart, every accepted request
has a row, and those cut off are interrupted with the text that had been sent."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from standby.journal import events as ev
from standby.journal.recovery import load_wal_id, recover, recover_after_replay
from standby.journal.sql import SQLStore
from standby.journal.wal import Position, WriteAheadLog
from standby.journal.writer import JournalWriter
from tests.journal.conftest import Rig, rows

ROOT = Path(__file__).resolve().parents[2]

# A gateway's journal under load: requests accepted, streamed, three in four finished,
# a writer applying batches concurrently.  Killed by the test at an arbitrary point.
_LOAD = """
import asyncio, sys
from standby.journal.journal import Journal
from standby.journal.recovery import load_wal_id
from standby.journal.sql import SQLStore
from standby.journal.wal import WriteAheadLog
from standby.journal.writer import JournalWriter

async def main(wal_dir, url):
    wal = WriteAheadLog(wal_dir)
    writer = JournalWriter(wal, SQLStore.from_url(url), wal_id=load_wal_id(wal_dir), batch=50)
    journal = Journal(wal)
    await writer.start()
    loaded = False
    for i in range(10**9):
        rid = f"r{i:07d}"
        journal.accepted(rid, endpoint="chat", route="m", model="m", stream=True,
                         raw_body=b'{"model":"m"}', metadata=None, store=True)
        journal.delta(rid, rid + ":a;")
        journal.delta(rid, rid + ":b;")
        if i % 4:
            journal.completed(rid, completion_id="c" + rid, provider="p", model="m",
                              response=b'{"object":"chat.completion"}', usage=None,
                              attempts=[])
        if i >= 300 and writer.batches >= 3 and not loaded:
            loaded = print("loaded", flush=True) or True
        if i % 10 == 0:
            await asyncio.sleep(0)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_kill_9_under_load_then_restart(
    store: SQLStore, store_url: str, tmp_path: Path
) -> None:
    wal_dir = tmp_path / "wal"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _LOAD,
        str(wal_dir),
        store_url,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    assert await asyncio.wait_for(child.stdout.readline(), 30) == b"loaded\n"
    os.kill(child.pid, signal.SIGKILL)
    await child.wait()

    started = time.time()
    assert await store.cursor(load_wal_id(wal_dir)) is not None  # it had committed some
    wal = WriteAheadLog(wal_dir)
    writer = JournalWriter(wal, store, wal_id=load_wal_id(wal_dir))
    await writer.start()
    try:
        marked = await recover_after_replay(writer, store, before=started)
    finally:
        await writer.stop()
        wal.close()

    sent: dict[str, str] = {}
    finished: set[str] = set()
    lines, _ = WriteAheadLog(wal_dir).read(Position(0, 0), 1 << 30)
    for line in lines:
        try:
            event = ev.decode(line)
        except ValueError:  # the line the kill tore mid-append: skipped, as the follower does
            continue
        if event["e"] == ev.ACCEPTED:
            sent[event["rid"]] = ""
        elif event["e"] == ev.DELTA:
            sent[event["rid"]] += event["text"]
        elif event["e"] == ev.FINAL:
            finished.add(event["rid"])
    found = {r["rid"]: r for r in await rows(store)}
    assert len(sent) > 300 and found.keys() == sent.keys()
    cut_off = sent.keys() - finished
    assert marked == len(cut_off) > 0
    for rid, row in found.items():
        assert row["state"] == ("completed" if rid in finished else "interrupted")
        assert (row["content_sent"] or "") == sent[rid]


async def test_recovery_spares_other_logs_and_the_current_run(rig: Rig) -> None:
    rig.request("old", text=["par", "tial"], finish=False)
    rig.request("done", text=["x"])
    writer = rig.writer()
    await writer.start()
    await writer.flush()
    await rig.store.apply([{"e": "acc", "rid": "other", "at": 1.0}], wal_id="another-log")
    started = time.time()
    rig.request("new", finish=False)  # this run's, accepted after it started
    await writer.flush()
    assert await recover(rig.store, rig.wal_id, before=started) == 1
    states = {r["rid"]: (r["state"], r["content_sent"]) for r in await rows(rig.store)}
    assert states == {
        "old": ("interrupted", "partial"),
        "done": ("completed", "x"),
        "other": ("accepted", None),
        "new": ("accepted", None),
    }


def test_the_log_id_is_made_once_and_kept(tmp_path: Path) -> None:
    first = load_wal_id(tmp_path / "wal")
    assert first == load_wal_id(tmp_path / "wal") != load_wal_id(tmp_path / "elsewhere")
    assert (tmp_path / "wal" / "wal_id").read_text().strip() == first
    assert [p.name for p in (tmp_path / "wal").iterdir()] == ["wal_id"]
