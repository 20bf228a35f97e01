"""The status page's hourly figures, counted by the journal's writer as requests end."""

from __future__ import annotations

from typing import Any

import pytest

from standby.journal import events as ev
from standby.journal.batch import Batch, fold
from standby.journal.schema import traffic_hours
from standby.journal.sql import SQLStore
from standby.journal.traffic import outcome
from standby.journal.traffic_store import HourFigures, TrafficStore, summarise_routes

HOUR0 = 1_900_000_800.0 // 3600 * 3600  # the start of an hour


def acc(rid: str, at: float, *, route: str = "chat", stream: bool = False) -> dict[str, Any]:
    return {
        "e": ev.ACCEPTED,
        "rid": rid,
        "at": at,
        "route": route,
        "model": route,
        "endpoint": "chat",
        "stream": stream,
        "store": False,
        "size": 2,
    }


def fin(rid: str, at: float, state: str = ev.COMPLETED, status: int = 200) -> dict[str, Any]:
    return {"e": ev.FINAL, "rid": rid, "at": at, "state": state, "status": status}


@pytest.mark.parametrize(
    ("state", "status", "stream", "took", "counted"),
    [
        (ev.COMPLETED, 200, False, 1.0, (0, 0)),
        (ev.COMPLETED, 200, False, 31.0, (0, 1)),  # later than the 30 s objective
        (ev.COMPLETED, 200, True, 300.0, (0, 0)),  # a long stream is not a slow one
        (ev.FAILED, 503, False, 1.0, (1, 0)),
        (ev.FAILED, 429, False, 1.0, (1, 0)),  # refused for capacity: customers felt it
        (ev.INTERRUPTED, None, True, 1.0, (1, 0)),
        (ev.CLIENT_GONE, 200, True, 1.0, (0, 0)),  # the client left: not our failure
        (ev.FAILED, 400, False, 0.1, None),  # the client's mistake is not a request
        (ev.FAILED, 404, False, 0.1, None),
    ],
)
def test_what_counts(
    state: str, status: int | None, stream: bool, took: float, counted: tuple[int, int] | None
) -> None:
    assert (
        outcome(
            state=state,
            status=status,
            stream=stream,
            received_at=0.0,
            finished_at=took,
            objective=30.0,
        )
        == counted
    )


async def test_each_request_is_counted_once_in_the_hour_it_arrived(store: SQLStore) -> None:
    first = [
        acc("a", HOUR0 + 10),
        fin("a", HOUR0 + 11),  # ended in its batch
        acc("b", HOUR0 + 20),
        fin("b", HOUR0 + 60, ev.FAILED, 503),
        acc("c", HOUR0 + 3599),
        fin("c", HOUR0 + 3650),  # ended in the next hour: slow
        acc("d", HOUR0 + 30),
        fin("d", HOUR0 + 31, ev.FAILED, 400),  # not counted
        acc("s", HOUR0 + 40, stream=True),
        {"e": ev.DELTA, "rid": "s", "text": "hi"},
        acc("late", HOUR0 + 50),  # deferred: ends in a later batch
        {"e": ev.DEFERRED, "rid": "late", "at": HOUR0 + 51, "until": HOUR0 + 9000},
        acc("other", HOUR0 + 70, route="embed"),
        fin("other", HOUR0 + 71),
    ]
    assert await store.write(fold(first, "w1"), wal_id="w1")
    # the stream ends in the next batch (its row is found in the database), the deferred
    # request completes on recovery two hours later, and "a" is ended again (a replayed
    # ending): none of that counts twice
    second = [fin("s", HOUR0 + 45), fin("late", HOUR0 + 7300), fin("a", HOUR0 + 12)]
    assert await store.write(fold(second, "w1"), wal_id="w1")
    hours = await TrafficStore(store.engine).hours(["chat", "embed"], since=HOUR0)
    assert sorted(hours, key=lambda h: h.route) == [
        # a, b (failed), c (slow: 51 s), s (its stream), late (slow: completed 2 h later)
        HourFigures("chat", int(HOUR0), 5, 1, 2),
        HourFigures("embed", int(HOUR0), 1, 0, 0),
    ]


async def test_the_objective_is_the_writers(store: SQLStore) -> None:
    events = [acc("a", HOUR0 + 1, route="strict"), fin("a", HOUR0 + 6)]
    assert await store.write(fold(events, "w1", Batch(objective=2.0)), wal_id="w1")
    [figures] = await TrafficStore(store.engine).hours(["strict"], since=HOUR0)
    assert (figures.requests, figures.slow) == (1, 1)


async def test_the_databases_sums_equal_the_pure_fold(store: SQLStore) -> None:
    """The page's figures summed by the database (what the gateway reads) and folded in
    Python from the hours (``history.summarise``, table-tested) agree, maintenance
    hours and window edges included."""
    from standby.statuspage.history import WINDOWS, merge, summarise

    now = HOUR0 + 3 * 86_400 + 1800  # half past an hour, three days on
    rows = []
    for index in range(80):  # 80 hours back from now, two routes, some failures
        hour = int(HOUR0 + 3 * 86_400 - index * 3600)
        rows += [("sum-a", hour, 100 + index, index % 3, index % 5 == 0), ("sum-b", hour, 7, 1, 0)]
    async with store.engine.begin() as conn:
        await conn.execute(
            traffic_hours.insert(),
            [
                {"route": r, "hour": h, "requests": n, "failed": f, "slow": int(s)}
                for r, h, n, f, s in rows
            ],
        )
    maintenance = [(HOUR0 + 86_400 + 600, HOUR0 + 86_400 + 4000)]  # touches two hours
    found = await summarise_routes(
        store.engine,
        ["sum-a", "sum-b"],
        since=now - 90 * 86_400,
        now=now,
        windows=WINDOWS,
        maintenance=maintenance,
    )
    hours = await TrafficStore(store.engine).hours(["sum-a", "sum-b"], since=now - 90 * 86_400)
    assert merge(list(found.values())) == summarise(hours, maintenance, now)
