"""Latency while the journal replays a spool after an outage, against no replay.

    python -m bench.journal_replay [--quick] [--events N] [--rate R] [--reps K] [--out NAME]

One journaling gateway (SQLite, core 1) in front of two simulated upstreams (core 0),
warmed up, then measured in pairs of turns, their order alternating:

* **replay** — an outage of the journal database (F22): this benchmark holds SQLite's
  write lock (``BEGIN IMMEDIATE`` from a connection of its own), so the journal's
  follower cannot commit and the gateway's write-ahead log spools, while N/2
  non-streamed requests are sent through the gateway (N events, default 100,000).  The
  lock is released and at once ``R`` requests/s (default 500) run open loop: the
  follower replays the spool while the gateway serves them;
* **none** — the same load with nothing to replay.

``/standby/health`` is polled every 50 ms for the position the database has committed;
the replay runs from the first commit after the release until the committed position
passes the spool's end.  Reported: p50 and p99 of the requests sent while the replay
ran (on the *none* turn: the same span from its start), of the whole window, and the
difference replay - none per pair, with the median of pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import client, journal_rig
from bench.journal_rig import Gateway, position
from bench.load import open_loop
from bench.processes import ProcessSet, raise_nofile
from bench.stats import summarize

SIDES = ("replay", "none")


class Watch:
    """Polls the journal's committed position: when it first moves, and when it
    reaches ``until``."""

    def __init__(
        self, session: aiohttp.ClientSession, gateway: Gateway, until: tuple[int, int]
    ) -> None:
        self.until = until
        self.moved_at: float | None = None
        self.done_at: float | None = None
        self._session, self._gateway = session, gateway
        self._first: tuple[int, int] | None = None
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while not self._stop.is_set():
            status = await journal_rig.journal_status(self._session, self._gateway)
            now, committed = time.perf_counter(), position(status.get("committed"))
            if self._first is None:
                self._first = committed
            elif self.moved_at is None and committed != self._first:
                self.moved_at = now
            if self.done_at is None and committed >= self.until:
                self.done_at = now
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._stop.set()
        await self._task


async def spool(gateway: Gateway, requests: int) -> sqlite3.Connection:
    """Take the database's write lock and send ``requests`` through the gateway: its
    log spools twice as many events.  Returns the connection holding the lock."""
    lock = sqlite3.connect(
        gateway.directory / "standby.db", isolation_level=None, timeout=30, check_same_thread=False
    )
    await asyncio.to_thread(lock.execute, "BEGIN IMMEDIATE")
    left = requests
    async with client.new_session(64, 30.0) as session:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                result = await client.chat(session, gateway.chat_url, time.perf_counter())
                if result.outcome != "ok":
                    raise RuntimeError(f"a request failed while spooling: {result.outcome}")

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(64))), 600)
    return lock


async def turn(
    gateway: Gateway,
    session: aiohttp.ClientSession,
    *,
    events: int,
    rate: float,
    duration: float,
) -> dict[str, Any]:
    """One turn: spool ``events`` (maybe), then release the database and load it."""
    lock = await spool(gateway, events // 2) if events else None
    async with aiohttp.ClientSession() as polling:
        status = await journal_rig.journal_status(polling, gateway)
        spool_end = position(status.get("log_end"))
        lag_at_release = int(status.get("lag_bytes") or 0)
        if lock is not None:
            lock.execute("ROLLBACK")
            lock.close()
        records: list[tuple[float, client.Result]] = []

        async def fire(scheduled: float) -> client.Result:
            result = await client.chat(session, gateway.chat_url, scheduled)
            records.append((scheduled, result))
            return result

        started = time.perf_counter()
        watch = Watch(polling, gateway, spool_end)
        run = await open_loop(fire, rate, duration, request_timeout=30.0)
        await watch.stop()
    moved = None if watch.moved_at is None else watch.moved_at - started
    done = None if watch.done_at is None else watch.done_at - started
    return {
        "spool_bytes": lag_at_release,
        "replay_from_s": moved,
        "replay_to_s": done,
        "replay_s": None if done is None or moved is None else done - moved,
        "records": [(at - started, r.outcome, r.latency_ms) for at, r in records],
        "summary": run.to_json(),
    }


def _quantiles(turn: dict[str, Any], span: tuple[float, float] | None) -> dict[str, Any]:
    latencies = [
        ms
        for at, outcome, ms in turn["records"]
        if outcome == "ok" and (span is None or span[0] <= at < span[1])
    ]
    summary = summarize(latencies)
    return {"p50": summary["p50"], "p99": summary["p99"], "n": len(latencies)}


async def measure(
    gateway: Gateway, *, events: int, rate: float, duration: float, reps: int
) -> dict[str, Any]:
    pairs = []
    async with client.new_session(1000, 30.0) as session:
        for rep in range(reps):
            pair: dict[str, Any] = {}
            for side in SIDES if rep % 2 == 0 else SIDES[::-1]:
                pair[side] = await turn(
                    gateway,
                    session,
                    events=events if side == "replay" else 0,
                    rate=rate,
                    duration=duration,
                )
                await asyncio.sleep(1.0)
            replay = pair["replay"]
            span = None
            if replay["replay_from_s"] is not None:
                span = (replay["replay_from_s"], replay["replay_to_s"] or duration)
            for side in SIDES:
                pair[side]["during"] = _quantiles(pair[side], span)
                pair[side]["window"] = _quantiles(pair[side], None)
                pair[side]["failed"] = pair[side]["summary"]["sent"] - pair[side]["summary"]["ok"]
                del pair[side]["records"]
            pairs.append(pair)
    return {"pairs": pairs, **_medians(pairs)}


def _medians(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in ("during", "window"):
        for q in ("p50", "p99"):
            replay = [p["replay"][part][q] for p in pairs]
            none = [p["none"][part][q] for p in pairs]
            differences = [a - b for a, b in zip(replay, none, strict=True)]
            out[f"{part}_{q}"] = {
                "replay": statistics.median(replay),
                "none": statistics.median(none),
                "difference": statistics.median(differences),
                "pairs": differences,
            }
    replays = [p["replay"]["replay_s"] for p in pairs if p["replay"]["replay_s"] is not None]
    out["replay_s"] = statistics.median(replays) if replays else None
    out["failed"] = {side: sum(p[side]["failed"] for p in pairs) for side in SIDES}
    return out


def _seconds(value: float | None) -> str:
    return "more than the window" if value is None else f"{value:.2f} s"


def render(results: dict[str, Any]) -> str:
    r = results["results"]
    lines = [
        f"# Latency while the journal replays a spool — {results['started']}",
        "",
        f"- command: `{results['command']}`",
        f"- load average at start {results['loadavg']}, at end {results['loadavg_end']}",
        f"- spool: {results['events']:,} events (a database outage while "
        f"{results['events'] // 2:,} requests went through); then "
        f"{results['rate']:g} req/s for {results['duration']:g} s",
        f"- the replay took {_seconds(r['replay_s'])} under that load (median; per pair: "
        + ", ".join(_seconds(p["replay"]["replay_s"]) for p in r["pairs"])
        + ")",
        "- gateway pinned to core 1, upstreams and load on core 0",
        "",
        "| requests | quantile | replaying | nothing to replay | difference (median of pairs) |",
        "|---|---|---:|---:|---:|",
    ]
    for part, label in (("during", "sent while the replay ran"), ("window", "whole window")):
        for q in ("p50", "p99"):
            row = r[f"{part}_{q}"]
            spread = ", ".join(f"{d:+.2f}" for d in row["pairs"])
            lines.append(
                f"| {label} | {q} | {row['replay']:.2f} ms | {row['none']:.2f} ms | "
                f"{row['difference']:+.2f} ms ({spread}) |"
            )
    lines.append(f"| failed | | {r['failed']['replay']} | {r['failed']['none']} | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="1 pair, 10,000 events")
    parser.add_argument("--events", type=int, help="events in the spool (default 100,000)")
    parser.add_argument("--rate", type=float, default=500.0, help="requests/s (default 500)")
    parser.add_argument("--duration", type=float, help="seconds of load per turn (default 8)")
    parser.add_argument("--reps", type=int, help="pairs (default 3, quick 1)")
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    args = parser.parse_args(argv)
    events = args.events or (10_000 if args.quick else 100_000)
    duration = args.duration or (3.0 if args.quick else 8.0)
    reps = args.reps or (1 if args.quick else 3)
    if not 0 < events <= 1_000_000 or duration > 120:
        parser.error("refusing an unbounded run")
    raise_nofile()
    workdir = Path(tempfile.mkdtemp(prefix="standby-journal-replay-"))
    results: dict[str, Any] = {
        "command": "python -m bench.journal_replay " + " ".join(argv or sys.argv[1:]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg": journal_rig.loadavg(),
        "events": events,
        "rate": args.rate,
        "duration": duration,
    }

    async def run() -> dict[str, Any]:
        with ProcessSet(workdir) as procs:
            bases = await journal_rig.start_upstreams(procs)
            gateway = journal_rig.make_gateway(workdir, "gateway", bases)
            await journal_rig.start(procs, gateway)
            async with client.new_session(100, 30.0) as session:  # warm-up, not recorded
                await open_loop(lambda t: client.chat(session, gateway.chat_url, t), 500, 3.0)
            return await measure(
                gateway, events=events, rate=args.rate, duration=duration, reps=reps
            )

    try:
        results["results"] = asyncio.run(run())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # gateways' journals, logs
    journal_rig.record(results, args.out, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
