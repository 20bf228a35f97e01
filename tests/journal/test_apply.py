"""Batch application: idempotent replay, log order, one append per stream per batch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson
import pytest

from standby.journal import drivers
from standby.journal import events as ev
from standby.journal.batch import Batch, fold
from standby.journal.sql import SQLStore
from standby.journal.wal import Position
from tests.journal.conftest import Rig, rows


def _events(rig: Rig) -> list[dict[str, Any]]:
    lines, _ = rig.wal.read(Position(0, 0), 1 << 30)
    return [ev.decode(line) for line in lines]


async def test_the_same_log_applied_twice_gives_the_same_rows(rig: Rig) -> None:
    rig.request("r1", text=["Hel", "lo"])
    rig.request("r2", finish=False, metadata={"team": "a"})
    rig.journal.deferred("r2", until=99.0, callback="https://example.test/cb")
    events = [e for e in _events(rig) if e["e"] != ev.DELTA]  # deltas: see below
    await rig.store.apply(events, wal_id=rig.wal_id)
    first = await rows(rig.store)
    await rig.store.apply(events, wal_id=rig.wal_id)
    assert await rows(rig.store) == first
    assert [r["state"] for r in first] == ["completed", "deferred"]


async def test_the_cursor_makes_a_replayed_batch_a_no_op(rig: Rig) -> None:
    rig.request("r1", text=["Hel", "lo"])
    lines, end = rig.wal.read(Position(0, 0))
    events = [ev.decode(line) for line in lines]
    start = Position(0, 0)
    assert await rig.store.apply(events, wal_id=rig.wal_id, start=start, end=end)
    before = await rows(rig.store)
    # the same batch again (a writer that did not see its own commit): refused whole
    assert not await rig.store.apply(events, wal_id=rig.wal_id, start=start, end=end)
    assert await rows(rig.store) == before
    assert before[0]["content_sent"] == "Hello"
    assert await rig.store.cursor(rig.wal_id) == end


async def test_rows_are_stored_as_the_log_says(rig: Rig) -> None:
    rig.request("r1", text=["a", "b"], metadata={"k": "v"})
    await rig.store.apply(_events(rig), wal_id=rig.wal_id)
    [row] = await rows(rig.store)
    assert row["wal_id"] == rig.wal_id and row["state"] == "completed"
    assert row["stream"] is True and row["store"] is True and row["deleted"] is False
    assert orjson.loads(row["request_json"])["messages"][0]["content"] == "hi"
    assert orjson.loads(row["response_json"])["object"] == "chat.completion"
    assert orjson.loads(row["attempts_json"]) == [
        ["primary/m", "server_error", 0.1],
        ["backup/m", "ok", 0.2],
    ]
    assert orjson.loads(row["metadata_json"]) == {"k": "v"}
    assert (row["completion_id"], row["provider"], row["model"], row["status"]) == (
        "chatcmpl-r1",
        "backup",
        "gpt-4o-mini-b",
        200,
    )
    assert row["finished_at"] >= row["received_at"]


async def test_an_ending_without_its_acceptance_still_leaves_a_row(rig: Rig) -> None:
    rig.journal.failed(
        "lost",
        status=503,
        response=b'{"error":{"message":"down"}}',
        attempts=[("p/m", "unavailable", 1.0)],
    )
    await rig.store.apply(_events(rig), wal_id=rig.wal_id)
    [row] = await rows(rig.store)
    assert (row["rid"], row["state"], row["status"]) == ("lost", "failed", 503)
    assert row["store"] is False  # never offered as a stored completion


async def test_acceptance_and_ending_in_separate_batches_in_log_order(rig: Rig) -> None:
    rig.request("r1", text=["x"], finish=False)
    first = _events(rig)
    await rig.store.apply(first, wal_id=rig.wal_id)
    assert (await rows(rig.store))[0]["state"] == "accepted"
    rig.journal.completed(
        "r1",
        completion_id="c1",
        provider="p",
        model="m",
        response=b'{"object":"chat.completion"}',
        usage=None,
        attempts=[],
    )
    await rig.store.apply(_events(rig)[len(first) :], wal_id=rig.wal_id)
    [row] = await rows(rig.store)
    assert (row["state"], row["content_sent"], row["completion_id"]) == ("completed", "x", "c1")


async def test_stream_text_is_one_append_per_request_per_batch(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    appends: list[tuple[Any, ...]] = []
    statements = drivers._rows

    def recorded(batch: Batch) -> Iterator[tuple[str, Iterable[Sequence[Any]]]]:
        for name, values in statements(batch):
            if name == "append":
                values = list(values)
                appends.extend(tuple(row) for row in values)
            yield name, values

    monkeypatch.setattr(drivers, "_rows", recorded)
    rig.request("r1", text=[f"{i} " for i in range(50)], finish=False)
    rig.request("r2", text=["only"], finish=False)
    await rig.store.apply(_events(rig), wal_id=rig.wal_id)
    # two requests, one parameter set each
    assert appends == [("".join(f"{i} " for i in range(50)), "r1"), ("only", "r2")]
    by_rid = {r["rid"]: r["content_sent"] for r in await rows(rig.store)}
    assert by_rid == {"r1": "".join(f"{i} " for i in range(50)), "r2": "only"}


async def test_an_ending_after_a_deferral_wins_and_a_later_deferral_wins_back(
    store: SQLStore,
) -> None:
    def acc(rid: str) -> dict[str, Any]:
        return {
            "e": "acc",
            "rid": rid,
            "at": 1.0,
            "endpoint": "chat",
            "route": "m",
            "model": "m",
            "stream": False,
            "store": True,
            "body": {"model": "m"},
        }

    fin = {"e": "fin", "at": 2.0, "state": "completed", "completion_id": "c", "status": 200}
    dfr = {"e": "dfr", "at": 2.0, "until": 50.0, "callback": None}
    await store.apply(
        [
            acc("a"),
            {**dfr, "rid": "a"},
            {**fin, "rid": "a"},
            acc("b"),
            {**fin, "rid": "b"},
            {**dfr, "rid": "b"},
        ],
        wal_id="w",
    )
    states = {r["rid"]: r["state"] for r in await rows(store)}
    assert states == {"a": "completed", "b": "deferred"}


async def test_text_postgresql_refuses_is_cleaned_and_bad_events_dropped(store: SQLStore) -> None:
    batch = fold(
        [
            {"e": "acc", "rid": "r"},
            {"e": "nope", "rid": "x"},
            {"e": "dlt", "rid": "r", "text": "a\x00b"},
        ],
        "w",
    )
    assert batch.dropped == 2 and batch.deltas == {"r": ["a\ufffdb"]}
    await store.apply(
        [
            {"e": "acc", "rid": "r", "at": 1.0, "model": "m\x00"},
            {"e": "dlt", "rid": "r", "text": "a\x00b"},
        ],
        wal_id="w",
    )
    [row] = await rows(store)
    assert (row["model_asked"], row["content_sent"]) == ("m\ufffd", "a\ufffdb")


async def test_metadata_and_deletion_events_find_rows_by_completion_id(rig: Rig) -> None:
    rig.request("r1")
    events = [
        *_events(rig),
        {"e": "meta", "completion_id": "chatcmpl-r1", "metadata": {"x": "1"}},
        {"e": "del", "completion_id": "chatcmpl-r1"},
    ]
    await rig.store.apply(events, wal_id=rig.wal_id)
    [row] = await rows(rig.store)
    assert orjson.loads(row["metadata_json"]) == {"x": "1"} and row["deleted"] is True
