"""Post-outage reports from a big journal: how long ``standby report`` takes to build an
incident's report over a 1-hour outage in a journal of 10 million requests, on SQLite and
on PostgreSQL.

    python -m bench.reports_bench [--rows 10000000] [--days 30] [--backends sqlite,postgresql]
                                  [--reps 5] [--out bench/results/reports-DATE]

The journal is made by the project's own migration, then filled by the database itself
(one ``INSERT … SELECT`` over a recursive CTE on SQLite, ``generate_series`` on
PostgreSQL): ``--rows`` requests spread evenly over ``--days`` days ending now, with
an outage hour the day before (the primary answers 503: a fallback serves, a few fail,
some streams are continued mid-answer) and its incident with a timeline.  Request and
response bodies are left out (a redacting journal's rows): the report reads none of
them.

Measured per backend: the report built from a new engine (cold: the first connection
and the database's cache as the filling left it), then ``--reps`` times warm; each
rendering (Markdown, HTML with its charts, JSON).  Target: under 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import machine
from bench.journal_rig import record
from standby.journal.incident_store import IncidentEvent, IncidentRow, IncidentStore
from standby.journal.migrate import migrate
from standby.journal.sql import open_engine
from standby.plan.load import parse_plan
from standby.plan.model import Plan
from standby.reports.build import incident_report
from standby.reports.render import render

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 2.0
DAY, HOUR = 86_400.0, 3_600.0
PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
PG_DB = "standby_reports_bench"
PRIMARY, FALLBACK = "openai/gpt-4o-mini", "anthropic/claude-3-5-haiku"
INCIDENT = "inc_bench_outage"
PLAN = """\
providers:
  openai: {kind: openai, base_url: "https://api.openai.com/v1", api_key: "sk-bench"}
  anthropic: {kind: anthropic, base_url: "https://api.anthropic.com", api_key: "sk-bench"}
routes:
  gpt-4o-mini:
    targets: ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku"]
prices:
  openai/gpt-4o-mini: {input: 0.15, output: 0.60}
  anthropic/claude-3-5-haiku: {input: 0.80, output: 4.00}
"""

# one expression per column of the filled rows, ``n`` the row's number and ``o`` whether
# it falls in the outage hour; shared by both databases (their row sources differ)
_START, _STEP = "CAST(:start AS double precision)", "CAST(:step AS double precision)"
_AT = f"({_START} + n * {_STEP})"
_OUT = (
    f"({_AT} >= CAST(:out_start AS double precision) "
    f"AND {_AT} < CAST(:out_end AS double precision))"
)
_COLUMNS = {
    "rid": "'req_' || n",
    "wal_id": "'bench'",
    "received_at": _AT,
    "client": "CASE n % 4 WHEN 0 THEN 'checkout' WHEN 1 THEN 'support' ELSE 'batch' END",
    "endpoint": "'/v1/chat/completions'",
    "route": "'gpt-4o-mini'",
    "model_asked": "'gpt-4o-mini'",
    "stream": "(n % 3 = 0)",
    "store": "(1 = 0)",
    "state": f"CASE WHEN {_OUT} AND n % 50 = 0 THEN 'failed' "
    "WHEN n % 997 = 0 THEN 'failed' ELSE 'completed' END",
    "status": f"CASE WHEN ({_OUT} AND n % 50 = 0) OR n % 997 = 0 THEN 503 ELSE 200 END",
    "provider": f"CASE WHEN {_OUT} THEN 'anthropic' ELSE 'openai' END",
    "model": f"CASE WHEN {_OUT} THEN 'claude-3-5-haiku' ELSE 'gpt-4o-mini' END",
    "finished_at": f"{_AT} + 0.3 + (n % 100) / 100.0 * CASE WHEN {_OUT} THEN 2.0 ELSE 1.0 END",
    "usage_json": '\'{"prompt_tokens": 120, "completion_tokens": 80}\'',
    "attempts_json": f"CASE WHEN {_OUT} AND n % 3 = 0 AND n % 7 = 0 THEN "
    f'\'[["{PRIMARY}", "stream_broken", 0.4, "mid_answer"], ["{FALLBACK}", "ok", 0.9]]\' '
    f'WHEN {_OUT} THEN \'[["{PRIMARY}", "unavailable", 0.2], ["{FALLBACK}", "ok", 0.9]]\' '
    f'ELSE \'[["{PRIMARY}", "ok", 0.8]]\' END',
}


def _insert(dialect: str) -> str:
    names = ", ".join(_COLUMNS)
    values = ", ".join(_COLUMNS.values())
    if dialect == "sqlite":
        return (
            "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq "
            "WHERE n < CAST(:count AS integer) - 1) "
            f"INSERT INTO requests ({names}) SELECT {values} FROM seq"
        )
    return (
        f"INSERT INTO requests ({names}) SELECT {values} "
        "FROM generate_series(0, CAST(:count AS bigint) - 1) AS seq(n)"
    )


def _log(text: str) -> None:
    print(f"[reports] {text}", file=sys.stderr, flush=True)


async def fill(
    engine: AsyncEngine, dialect: str, rows: int, days: int, now: float
) -> dict[str, Any]:
    """The journal: the migration, ``rows`` requests, the outage's incident."""
    started = time.perf_counter()
    await migrate(engine)
    start = now - days * DAY
    out_start = now - DAY - HOUR  # an hour the day before: 7 days of baseline before it
    out_end = out_start + HOUR
    chunk = 1_000_000  # one statement per million: a bounded transaction
    for first in range(0, rows, chunk):
        count = min(chunk, rows - first)
        params = {
            "count": count,
            "start": start + first * days * DAY / rows,
            "step": days * DAY / rows,
            "out_start": out_start,
            "out_end": out_end,
        }
        sql = _insert(dialect).replace("'req_' || n", f"'req_' || (n + {first})")
        async with engine.begin() as conn:
            await conn.execute(sa.text(sql), params)
        _log(f"{dialect}: {first + count:,} rows")
    events = (
        IncidentEvent(out_start + 2, "first_failure", "first failure seen"),
        IncidentEvent(out_start + 9, "opened", "detected: 40 of 41 attempts failed"),
        IncidentEvent(out_start + 9, "failover", f"traffic is served by {FALLBACK}"),
        IncidentEvent(out_start + 11, "notified", "opened sent to on-call"),
        IncidentEvent(out_start + 300, "official", "openai's status page: elevated errors"),
        IncidentEvent(out_end - 60, "resolved", "recovered: healthy for long enough"),
    )
    await IncidentStore(engine).create(
        IncidentRow(
            id=INCIDENT,
            component="route:gpt-4o-mini",
            title="gpt-4o-mini unavailable",
            status="resolved",
            severity="major",
            source="detector",
            opened_at=out_start + 9,
            updated_at=out_end - 60,
            first_failure_at=out_start + 2,
            resolved_at=out_end - 60,
            events=events,
        )
    )
    if dialect == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(sa.text("ANALYZE requests"))
    return {"rows": rows, "days": days, "fill_s": time.perf_counter() - started}


async def measure(engine_url: str, plan: Plan, reps: int) -> dict[str, Any]:
    """The report, cold then warm, and each rendering."""
    engine = open_engine(engine_url)
    try:
        started = time.perf_counter()
        report = await incident_report(engine, plan, INCIDENT)
        cold = time.perf_counter() - started
        warm = []
        for _ in range(reps):
            started = time.perf_counter()
            report = await incident_report(engine, plan, INCIDENT)
            warm.append(time.perf_counter() - started)
    finally:
        await engine.dispose()
    renders = {}
    for fmt in ("markdown", "html", "json"):
        started = time.perf_counter()
        text = render(report, fmt)
        renders[fmt] = {"s": time.perf_counter() - started, "bytes": len(text.encode())}
    impact = report.impact
    return {
        "cold_s": cold,
        "warm_s": warm,
        "warm_p50_s": statistics.median(warm),
        "warm_max_s": max(warm),
        "renders": renders,
        "window_requests": impact.requests,
        "answered_by_fallback": impact.answered_by_fallback,
        "failed": impact.failed,
        "streams_continued": impact.streams_continued,
        "latency_ms": [impact.latency.p50_ms, impact.latency.p99_ms],
        "baseline_ms": [impact.baseline.p50_ms, impact.baseline.p99_ms],
        "buckets": len(report.series),
        "met": cold + renders["html"]["s"] < TARGET_S,
    }


@contextlib.asynccontextmanager
async def sqlite_journal(folder: Path) -> AsyncIterator[str]:
    yield f"sqlite:///{folder / 'standby.db'}"


@contextlib.asynccontextmanager
async def postgres_journal() -> AsyncIterator[str]:
    admin = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f"DROP DATABASE IF EXISTS {PG_DB}"))
            await conn.execute(sa.text(f"CREATE DATABASE {PG_DB}"))
        yield f"postgresql://postgres@127.0.0.1:5432/{PG_DB}"
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)"))
        await admin.dispose()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = parse_plan(PLAN, file="reports-bench", env={})
    results: dict[str, Any] = {"backends": {}}
    now = time.time()
    with tempfile.TemporaryDirectory(prefix="standby-reports-bench-") as folder:
        for backend in args.backends.split(","):
            journal = sqlite_journal(Path(folder)) if backend == "sqlite" else postgres_journal()
            async with journal as url:
                engine = open_engine(url)
                try:
                    _log(f"{backend}: filling {args.rows:,} requests over {args.days} days")
                    filled = await fill(engine, backend, args.rows, args.days, now)
                finally:
                    await engine.dispose()
                if backend == "sqlite":
                    filled["size_mib"] = (Path(folder) / "standby.db").stat().st_size / 2**20
                _log(f"{backend}: filled in {filled['fill_s']:.0f} s; building reports")
                measured = await measure(url, plan, args.reps)
                results["backends"][backend] = {**filled, **measured}
                _log(
                    f"{backend}: cold {measured['cold_s']:.2f} s, warm p50 "
                    f"{measured['warm_p50_s']:.2f} s"
                )
    return results


def render_results(results: dict[str, Any]) -> str:
    lines = [
        f"# Post-outage reports from a big journal — {results['started']}",
        "",
        f"- command: `{results['command']}`",
        f"- machine: {results['machine']['nproc']} CPUs, {results['machine']['cpu_model']}, "
        f"Python {results['machine']['python']}, git {results['machine']['git']}",
        f"- load average at start {results['machine']['loadavg_start']}, at end "
        f"{results.get('loadavg_end')}",
        "",
        "An incident's report over a 1-hour outage (the primary answering 503, a fallback "
        "serving) in a journal filled by the database itself; bodies left out. Cold: a new "
        "engine, first connection included. Target: report + HTML under 2 s.",
        "",
        "| backend | requests in the journal | over | filled in | requests in the window "
        "| report cold | warm p50 | warm max | Markdown | HTML (3 charts) | JSON "
        "| target < 2 s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, b in results["backends"].items():
        r = b["renders"]
        lines.append(
            f"| {name} | {b['rows']:,} | {b['days']} days | {b['fill_s']:.0f} s "
            f"| {b['window_requests']:,} | {b['cold_s'] * 1000:,.0f} ms "
            f"| {b['warm_p50_s'] * 1000:,.0f} ms | {b['warm_max_s'] * 1000:,.0f} ms "
            f"| {r['markdown']['s'] * 1000:.1f} ms | {r['html']['s'] * 1000:.1f} ms "
            f"({r['html']['bytes'] / 1024:.0f} KiB) | {r['json']['s'] * 1000:.1f} ms "
            f"| {'met' if b['met'] else 'NOT met'} |"
        )
    lines.append("")
    for name, b in results["backends"].items():
        lines.append(
            f"- {name}: the window held {b['window_requests']:,} requests "
            f"({b['answered_by_fallback']:,} answered by the fallback, {b['failed']:,} failed, "
            f"{b['streams_continued']:,} streams continued); latency p50/p99 "
            f"{b['latency_ms'][0]:.0f}/{b['latency_ms'][1]:.0f} ms against "
            f"{b['baseline_ms'][0]:.0f}/{b['baseline_ms'][1]:.0f} ms over the same hours of "
            f"7 days; {b['buckets']} chart buckets"
            + (f"; database {b['size_mib']:,.0f} MiB" if "size_mib" in b else "")
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "command": "python -m bench.reports_bench " + " ".join(argv or sys.argv[1:]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine.facts(ROOT),
    }
    results.update(asyncio.run(run(args)))
    record(results, args.out, render_results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
