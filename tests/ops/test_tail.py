"""``Tail``: the latest requests, then new ones and state changes, against a real journal."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
from rich.console import Console

from standby.journal.events import new_request_id
from standby.ops.tail import OPEN_FOR, Tail, attempts_summary, table
from tests.ops import Clock, converse, database, journal_stack


async def test_poll_shows_new_rows_and_state_changes_once(tmp_path: Path) -> None:
    clock = Clock(time.time() - 60)
    async with (
        database("sqlite", tmp_path) as url,
        journal_stack(url, tmp_path / "wal", clock) as stack,
    ):
        before = converse(stack, 3, step=1)
        await stack.flush()
        tail = Tail(stack.store)
        assert [r.rid for r in await tail.latest(2)] == [s["rid"] for s in before[1:]]
        assert await tail.poll() == []  # the window's older rows are remembered, not shown

        rid = new_request_id()
        clock.now += 1
        stack.journal.accepted(
            rid,
            endpoint="chat",
            route="gpt-4o-mini",
            model="gpt-4o-mini",
            stream=True,
            raw_body=b'{"model":"gpt-4o-mini","messages":[]}',
            metadata=None,
            store=True,
        )
        stack.journal.delta(rid, "Hel")
        await stack.flush()
        assert [(r.rid, r.state) for r in await tail.poll()] == [(rid, "accepted")]
        assert await tail.poll() == []

        clock.now += 30
        stack.journal.completed(
            rid,
            completion_id="chatcmpl-x",
            provider="backup",
            model="gpt-4o-mini",
            response={"choices": []},
            usage=None,
            attempts=[
                ("primary/gpt-4o-mini", "stream_broken", 1.0),
                ("backup/gpt-4o-mini", "ok", 2.0),
            ],
        )
        later = converse(stack, 1, step=1)
        await stack.flush()
        changed = await tail.poll()
    assert [(r.rid, r.state) for r in changed] == [
        (rid, "completed"),
        (later[0]["rid"], "completed"),
    ]
    assert attempts_summary(changed[0]) == "primary:stream_broken, backup:ok"
    assert "tracking=" in repr(tail)


async def test_what_tail_remembers_is_bounded_by_its_window(tmp_path: Path) -> None:
    clock = Clock(time.time() - 3600)
    async with (
        database("sqlite", tmp_path) as url,
        journal_stack(url, tmp_path / "wal", clock) as stack,
    ):
        tail = Tail(stack.store)
        assert await tail.latest(5) == []
        for _ in range(4):
            converse(stack, 6, step=OPEN_FOR / 3)  # longer than an unfinished row is followed
            await stack.flush()
            assert len(await tail.poll()) == 6
    assert len(tail.seen) == 7  # the last round, and the newest row of the round before


def test_the_table_fits_the_console_and_keeps_its_columns() -> None:
    from tests.ops.test_export import row

    console = Console(width=160, record=True, color_system=None)
    console.print(
        table(
            [
                row(),
                row(rid="req_0002", state="failed", status=502, provider=None, finished_at=None),
            ]
        )
    )
    text = console.export_text()
    assert "gpt-4o-mini → backup/gpt-4o-mini-2024" in text
    assert "failed 502" in text and "primary:unavailable, backup:ok" in text
    assert max(len(line) for line in text.splitlines()) <= 160
    assert orjson.dumps(text)  # plain text, nothing unprintable
