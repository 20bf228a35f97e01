"""Journal throughput: sustained rows per second, and replaying a spool.

Two measurements per database (SQLite in a temporary directory, and PostgreSQL in a
``standby_test_bench_<random>`` database created and dropped for the run):

* **sustained** — ``N`` requests (an ``acc`` and a ``fin`` event each, realistic bodies)
  are appended through ``Journal`` → write-ahead log while a ``JournalWriter`` applies
  them; rows/s is ``N`` over the time from the first append until ``flush()`` returns.
  The hot path's cost (µs per request, both appends) is measured on the same run.
* **replay** — a spool of ``M`` requests is written with no writer running (the
  database was away), then a writer starts; time until it has caught up, and how late
  the event loop ran meanwhile.
* **loop lag at 500 req/s** — requests (``acc``, 20 stream deltas, ``fin``) are journaled
  at 500 per second for a few seconds while a 1 ms ticker measures how late the event
  loop wakes it (what every in-flight request would feel), without a writer (log only)
  and with one; the difference is what the database side of the journal adds.

    python -m bench.journal_bench            # N = 50,000, M = 100,000, 5 s paced
    python -m bench.journal_bench --quick    # N = 5,000,  M = 10,000, 1 s paced
    python -m bench.journal_bench --pg postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from standby.journal.journal import Journal
from standby.journal.migrate import migrate
from standby.journal.sql import SQLStore
from standby.journal.wal import WriteAheadLog
from standby.journal.writer import JournalWriter

_BODY = (
    b'{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful '
    b'assistant."},{"role":"user","content":"Summarise the attached meeting notes in '
    b'three bullet points, please."}],"temperature":0.2}'
)
_ANSWER = (
    b'{"id":"chatcmpl-x","object":"chat.completion","created":1700000000,"model":'
    b'"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":'
    b'"- Budget approved\\n- Launch moved to May\\n- Hiring two engineers"},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":41,"completion_tokens":19,'
    b'"total_tokens":60}}'
)
_CHUNK = 500  # requests appended between yields to the event loop (the writer runs then)


@dataclass(frozen=True, slots=True)
class Result:
    backend: str
    sustained_rows_s: float
    append_us: float  # hot-path cost per request (acc + fin appends)
    replay_rows: int
    replay_s: float
    lag_replay: tuple[float, float]  # loop lag p99, max (ms) while replaying
    lag_log_only: tuple[float, float]  # loop lag p99, max (ms) at 500 req/s, no writer
    lag_with_writer: tuple[float, float]


def _journal_requests(journal: Journal, first: int, count: int) -> None:
    for i in range(first, first + count):
        rid = f"req_{i:012d}"
        journal.accepted(
            rid,
            endpoint="chat",
            route="gpt-4o-mini",
            model="gpt-4o-mini",
            stream=False,
            raw_body=_BODY,
            metadata={"team": "bench"},
            store=True,
        )
        journal.completed(
            rid,
            completion_id=f"chatcmpl-{i}",
            provider="openai",
            model="gpt-4o-mini",
            response=_ANSWER,
            usage={"total_tokens": 60},
            attempts=[("openai/gpt-4o-mini", "ok", 0.8)],
        )


async def _sustained(url: str, work: Path, requests: int) -> tuple[float, float]:
    store = SQLStore.from_url(url)
    await migrate(store.engine)
    wal = WriteAheadLog(work / "sustained")
    writer = JournalWriter(wal, store, wal_id="bench-sustained")
    journal = Journal(wal, wake=writer.wake)
    await writer.start()
    appending = 0.0
    started = time.perf_counter()
    for first in range(0, requests, _CHUNK):
        before = time.perf_counter()
        _journal_requests(journal, first, min(_CHUNK, requests - first))
        appending += time.perf_counter() - before
        await asyncio.sleep(0)
    await writer.flush(timeout=None)
    elapsed = time.perf_counter() - started
    await writer.stop()
    wal.close()
    await store.close()
    return requests / elapsed, appending / requests * 1e6


async def _replay(url: str, work: Path, requests: int) -> tuple[float, tuple[float, float]]:
    wal = WriteAheadLog(work / "spool")
    _journal_requests(Journal(wal), 0, requests)  # written while no writer runs
    store = SQLStore.from_url(url)
    await migrate(store.engine)
    writer = JournalWriter(wal, store, wal_id="bench-replay")
    ticker = _Ticker()
    started = time.perf_counter()
    await writer.start()
    await writer.caught_up()
    elapsed = time.perf_counter() - started
    lag = await ticker.stop()
    await writer.stop()
    wal.close()
    await store.close()
    return elapsed, lag


class _Ticker:
    """How late the event loop wakes a 1 ms timer: what every in-flight request feels."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._done = asyncio.Event()
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while not self._done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            self.lags.append(time.perf_counter() - before - 0.001)

    async def stop(self) -> tuple[float, float]:
        """p99 and max lag, in ms."""
        self._done.set()
        await self._task
        lags = sorted(self.lags)
        return lags[int(len(lags) * 0.99)] * 1e3, lags[-1] * 1e3


async def _paced(journal: Journal, seconds: float, rate: int = 500) -> tuple[float, float]:
    """Journal ``rate`` streamed requests a second; the loop's p99 and max lag (ms)."""
    ticker = _Ticker()
    per_tick, started, sent = rate // 100, time.perf_counter(), 0
    while (now := time.perf_counter()) - started < seconds:
        for i in range(sent, sent + per_tick):
            rid = f"paced_{id(journal)}_{i:09d}"
            journal.accepted(
                rid,
                endpoint="chat",
                route="gpt-4o-mini",
                model="gpt-4o-mini",
                stream=True,
                raw_body=_BODY,
                metadata=None,
                store=True,
            )
            for _ in range(20):
                journal.delta(rid, "a few words ")
            journal.completed(
                rid,
                completion_id=rid,
                provider="openai",
                model="gpt-4o-mini",
                response=_ANSWER,
                usage=None,
                attempts=[],
            )
        sent += per_tick
        await asyncio.sleep(max(0.0, started + sent / rate - now))
    return await ticker.stop()


async def _loop_lag(
    url: str, work: Path, seconds: float
) -> tuple[tuple[float, float], tuple[float, float]]:
    wal = WriteAheadLog(work / "paced-log-only")
    log_only = await _paced(Journal(wal), seconds)
    wal.close()
    store = SQLStore.from_url(url)
    await migrate(store.engine)
    wal = WriteAheadLog(work / "paced")
    writer = JournalWriter(wal, store, wal_id="bench-paced")
    await writer.start()
    with_writer = await _paced(Journal(wal, wake=writer.wake), seconds)
    await writer.flush(timeout=None)
    await writer.stop()
    wal.close()
    await store.close()
    return log_only, with_writer


async def _measure(
    backend: str, url: str, work: Path, sustained: int, spool: int, seconds: float
) -> Result:
    rate, append_us = await _sustained(url, work, sustained)
    replay_s, replay_lag = await _replay(url, work, spool)
    log_only, with_writer = await _loop_lag(url, work, seconds)
    return Result(backend, rate, append_us, spool, replay_s, replay_lag, log_only, with_writer)


async def _pg_admin(server: str, statement: str) -> None:
    url = make_url(server)
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
        timeout=5,
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def run(sustained: int, spool: int, seconds: float, pg_server: str | None) -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory(prefix="journal-bench-") as tmp:
        work = Path(tmp)
        results.append(
            await _measure(
                "sqlite",
                f"sqlite:///{work / 'journal.db'}",
                work / "sqlite",
                sustained,
                spool,
                seconds,
            )
        )
        if pg_server:
            name = f"standby_test_bench_{secrets.token_hex(4)}"
            await _pg_admin(pg_server, f'CREATE DATABASE "{name}"')
            try:
                url = make_url(pg_server).set(database=name).render_as_string(hide_password=False)
                results.append(
                    await _measure("postgresql", url, work / "pg", sustained, spool, seconds)
                )
            finally:
                await _pg_admin(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return results


def _ms(lag: tuple[float, float]) -> str:
    return f"{lag[0]:.2f} / {lag[1]:.2f}"


def render(results: list[Result], sustained: int) -> str:
    rows = [
        ("", *(r.backend for r in results)),
        (f"sustained rows/s (N={sustained:,})", *(f"{r.sustained_rows_s:,.0f}" for r in results)),
        ("hot path µs per request (acc + fin)", *(f"{r.append_us:.1f}" for r in results)),
        (
            f"replay of a {results[0].replay_rows:,}-row spool, s",
            *(f"{r.replay_s:.2f}" for r in results),
        ),
        ("replay rows/s", *(f"{r.replay_rows / r.replay_s:,.0f}" for r in results)),
        ("loop lag p99 / max ms, replaying", *(_ms(r.lag_replay) for r in results)),
        ("500 req/s: loop lag p99 / max ms, log only", *(_ms(r.lag_log_only) for r in results)),
        (
            "500 req/s: loop lag p99 / max ms, with writer",
            *(_ms(r.lag_with_writer) for r in results),
        ),
    ]
    width = max(len(row[0]) for row in rows)
    return "\n".join(
        f"{row[0]:<{width}}" + "".join(f"{cell:>16}" for cell in row[1:]) for row in rows
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.journal_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a tenth of the work")
    parser.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL server (any database on it); '' to skip",
    )
    args = parser.parse_args(argv)
    sustained, spool, seconds = (5_000, 10_000, 1.0) if args.quick else (50_000, 100_000, 5.0)
    results = asyncio.run(run(sustained, spool, seconds, args.pg or None))
    print(render(results, sustained))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
