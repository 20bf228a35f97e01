"""The status page benchmark's journal: a database made by the project's migration and
filled with 90 days of a busy gateway, and what its files weigh."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import statuspage_rig as rig
from standby.journal.incident_store import IncidentRow, IncidentStore
from standby.journal.migrate import migrate
from standby.journal.sql import open_engine

HOUR = 3_600
DAY = 86_400


# -- the database --------------------------------------------------------------------------------


@dataclass
class Seeded:
    """What ``seed`` wrote, and how long it took."""

    path: Path
    now: float
    requests_total: int = 0  # requests the figures count
    hour_rows: int = 0
    incidents: int = 0
    public_incidents: int = 0
    incident_events: int = 0
    request_rows: int = 0
    seconds: dict[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests_counted_in_figures": self.requests_total,
            "traffic_hours_rows": self.hour_rows,
            "incidents": self.incidents,
            "public_incidents": self.public_incidents,
            "incident_events": self.incident_events,
            "requests_rows": self.request_rows,
            "seconds": self.seconds,
        }


async def seed(
    path: Path, now: float, total: int, *, seed_value: int = 20261203
) -> tuple[Seeded, list[rig.Figures], list[IncidentRow]]:
    """Migrate a new database at ``path`` and write the figures and incidents of
    ``total`` requests over 90 days (``requests`` stays empty: ``add_requests``)."""
    rng = random.Random(seed_value)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    engine = open_engine(f"sqlite:///{path}")
    try:
        await migrate(engine)
        seconds["migrate"] = time.perf_counter() - started
        found = rig.episodes(rig.first_day_of(now), now, rng)
        figures = rig.hourly_figures(now, total, found, rng)
        incidents = rig.incident_rows(found, rng)
        mark = time.perf_counter()
        store = IncidentStore(engine)
        for row in incidents:
            await store.create(row)
        seconds["incidents"] = time.perf_counter() - mark
    finally:
        await engine.dispose()
    mark = time.perf_counter()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.executemany(
            "INSERT INTO traffic_hours (route, hour, requests, failed, slow) "
            "VALUES (?, ?, ?, ?, ?)",
            figures,
        )
    seconds["traffic_hours"] = time.perf_counter() - mark
    report = Seeded(
        path,
        now,
        requests_total=sum(f[2] for f in figures),
        hour_rows=len(figures),
        incidents=len(incidents),
        public_incidents=sum(not i.component.startswith("target:") for i in incidents),
        incident_events=sum(len(i.events) for i in incidents),
        seconds=seconds,
    )
    return report, figures, incidents


def add_requests(
    path: Path, figures: list[rig.Figures], rows: int, now: float, *, seed_value: int = 7
) -> tuple[int, float]:
    """Insert ``rows`` requests (the newest hours' worth) in one transaction with
    ``executemany``; returns how many and the seconds it took."""
    started = time.perf_counter()
    rng = random.Random(seed_value)
    inserted = 0
    db = sqlite3.connect(path)
    try:
        # a scratch database, loaded once: no fsync, and a rollback journal rather than a
        # write-ahead log the size of the table (the gateway turns WAL on as it connects)
        db.execute("PRAGMA synchronous=OFF")
        with contextlib.suppress(sqlite3.OperationalError):  # another connection: keep WAL
            db.execute("PRAGMA journal_mode=DELETE")
        db.execute("PRAGMA cache_size=-262144")
        batch: list[tuple[Any, ...]] = []
        with db:
            for row in rig.request_rows(figures, rows, now, rng):
                batch.append(row)
                if len(batch) == 50_000:
                    db.executemany(rig.INSERT, batch)
                    inserted += len(batch)
                    batch.clear()
            if batch:
                db.executemany(rig.INSERT, batch)
                inserted += len(batch)
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()
    return inserted, time.perf_counter() - started


def copy_database(path: Path, to: Path) -> None:
    """A consistent copy of the database at ``path`` (SQLite's online backup)."""
    with (
        contextlib.closing(sqlite3.connect(path)) as source,
        contextlib.closing(sqlite3.connect(to)) as target,
    ):
        source.backup(target)


def sizes(path: Path) -> dict[str, int]:
    """Bytes on disk: the file (and its write-ahead log), and each table with its indexes."""
    found = {"file": path.stat().st_size}
    wal = path.with_name(path.name + "-wal")
    found["wal_file"] = wal.stat().st_size if wal.exists() else 0
    with contextlib.closing(sqlite3.connect(path)) as db:
        owner = dict(db.execute("SELECT name, tbl_name FROM sqlite_master"))
        for name, size in db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
            table = owner.get(name, name)
            found[f"table:{table}"] = found.get(f"table:{table}", 0) + int(size)
    return found


def explain_traffic_query(path: Path, routes: list[str], since: int) -> list[str]:
    """SQLite's plan for the page's figures query (``TrafficStore.hours``)."""
    marks = ", ".join("?" for _ in routes)
    query = (
        f"EXPLAIN QUERY PLAN SELECT * FROM traffic_hours WHERE route IN ({marks}) "
        "AND hour >= ? ORDER BY hour"
    )
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [str(row[-1]) for row in db.execute(query, [*routes, since])]
