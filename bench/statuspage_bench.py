"""The public status page: built from a busy journal, and flooded by visitors in an outage.

    python -m bench.statuspage_bench [--quick] [--only render,flood,background]
                                     [--out bench/results/statuspage-YYYY-MM-DD]

One scratch directory holds a journal database made by the project's migration and
filled by ``bench.statuspage_rig`` with 90 days of a busy gateway (10 million requests'
worth of ``traffic_hours``, past incidents with their timelines, one incident open now, a
million ``requests`` rows).  Each measurement has a baseline of the same invocation:

1. **render** — this process, pinned to core 1: the time to build the page,
   ``PageSource.view()`` (attached to the database) and the HTML (``html.render``), cold
   (a new engine, a new jinja environment), warm (``forget()`` before each of
   ``--builds`` builds), steady (the view expired, the figures still cached) and 16
   callers at once on an expired view; with the ``requests`` table empty (the baseline)
   and after a million rows were inserted: the page reads ``traffic_hours`` only.
   Target: < 100 ms.
2. **flood** — a real ``standby serve`` on that database (core 1; upstreams, wrk and this
   load generator on core 0), the outage declared through the admin API
   (``POST /standby/incidents``, the page in "major outage").  Chat completions at a fixed
   open-loop rate (200 req/s, timed from the scheduled send), alone and while wrk floods
   ``/status`` and ``/status/api/v2/summary.json`` in turn at 2,000 req/s (half of the
   visitors revalidating with the ETag of a copy ``max-age`` old), in alternating pairs;
   then one pair at 10 visitors/s.  Target: the API's p99 slows by no more than 1 ms.
   Then where the time goes: the gateway's CPU per answer of each page (wrk alone), and a
   py-spy profile of the gateway during the flood.
3. **background** — no visitor at all: the API's latency with the page's subscriptions
   on (the default; their delivery round builds the page every 2 s) and off, a fresh
   gateway on the same journal for each side, in alternating pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import inspect
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import orjson

import standby
from bench import journal_rig, machine
from bench import statuspage_rig as rig
from bench import statuspage_seed as seeding
from bench.processes import ProcessSet, raise_nofile
from bench.run import pin_self
from bench.stats import percentile, summarize
from bench.statuspage_flood import background_phase, flood_phase
from bench.statuspage_report import render_report
from bench.statuspage_settings import PHASES, ROOT, STAMPEDE, Settings, _ms, log
from standby.incidents.manager import route_targets
from standby.journal.incident_store import IncidentRow, IncidentStore
from standby.journal.sql import open_engine
from standby.journal.traffic_store import TrafficStore
from standby.plan.model import Plan
from standby.statuspage.api import summary_json
from standby.statuspage.html import environment, render
from standby.statuspage.model import PageView, components_of
from standby.statuspage.source import PageSource

# -- 1. rendering from a busy journal ------------------------------------------------------------


def rebuilding() -> dict[str, Any]:
    """``PageSource``'s keyword for how long a built view is kept (``page_ttl``, or
    ``max_age`` in later versions) set to 0: every ``view()`` builds, from the figures
    it keeps for ``figures_ttl``."""
    names = inspect.signature(PageSource).parameters
    return next(({name: 0.0} for name in ("page_ttl", "max_age") if name in names), {})


class Builds:
    """The page built again and again from one database, each build timed (ms)."""

    def __init__(self, db: Path, plan: Plan, opened: list[IncidentRow]) -> None:
        self.engine = open_engine(f"sqlite:///{db}")
        self.source = PageSource(lambda: plan, lambda: opened, route_targets=route_targets)
        self.source.attach(self.engine)
        self.rebuilt = PageSource(
            lambda: plan, lambda: opened, route_targets=route_targets, **rebuilding()
        )
        self.rebuilt.attach(self.engine)
        self.traffic, self.incidents = TrafficStore(self.engine), IncidentStore(self.engine)
        self.routes = sorted({r for _, _, routes in components_of(plan) for r in routes})
        self.env = environment()
        self.cold: dict[str, float] = {}
        self.warm: dict[str, list[float]] = {"view": [], "html": [], "total": [], "json": []}
        self.steady: list[float] = []
        self.parts: dict[str, list[float]] = {"figures_query": [], "incidents_query": []}
        self.figures_rows = 0
        self.stampede: dict[str, Any] = {}
        self.view: PageView | None = None
        self.html = ""

    async def first(self) -> None:
        """The first build: a new engine (its first connection), templates compiled."""
        started = time.perf_counter()
        view = await self.source.view()
        viewed = time.perf_counter()
        self.env = environment()
        self.html = render(self.env, view, lang="en")
        rendered = time.perf_counter()
        self.view = view
        self.cold = {
            "view": _ms(viewed - started),
            "html": _ms(rendered - viewed),
            "total": _ms(rendered - started),
        }
        await self.rebuilt.view()  # its figures, read once

    async def afresh(self) -> None:
        """``forget()``, then view, HTML and (for comparison) the summary.json document."""
        self.source.forget()
        started = time.perf_counter()
        view = await self.source.view()
        viewed = time.perf_counter()
        self.html = render(self.env, view, lang="en")
        rendered = time.perf_counter()
        orjson.dumps(summary_json(view))
        documented = time.perf_counter()
        self.view = view
        self.warm["view"].append(_ms(viewed - started))
        self.warm["html"].append(_ms(rendered - viewed))
        self.warm["total"].append(_ms(rendered - started))
        self.warm["json"].append(_ms(documented - rendered))

    async def expired(self) -> None:
        """A view built again from figures already read (what a visitor who finds the
        view expired waits for in a gateway), and its HTML."""
        started = time.perf_counter()
        render(self.env, await self.rebuilt.view(), lang="en")
        self.steady.append(_ms(time.perf_counter() - started))

    async def crowd(self, callers: int) -> None:
        """``callers`` visitors at once after ``forget()``: how many builds it takes."""
        self.source.forget()
        started = time.perf_counter()
        views = await asyncio.gather(*(self.source.view() for _ in range(callers)))
        self.stampede = {
            "callers": callers,
            "builds": len({id(v) for v in views}),  # each build makes a new view
            "ms": _ms(time.perf_counter() - started),
        }

    async def apart(self) -> None:
        """The two queries of a view: the hourly figures, the public incidents."""
        at = time.time()
        started = time.perf_counter()
        hours = await self.traffic.hours(self.routes, since=at - rig.DAYS * rig.DAY)
        queried = time.perf_counter()
        await self.incidents.public(since=at - rig.DAYS * rig.DAY)
        listed = time.perf_counter()
        self.figures_rows = len(hours)
        self.parts["figures_query"].append(_ms(queried - started))
        self.parts["incidents_query"].append(_ms(listed - queried))

    async def close(self) -> None:
        await self.engine.dispose()

    def results(self) -> dict[str, Any]:
        view = self.view
        assert view is not None
        days = [day for c in view.components if c.history for day in c.history.days]
        parts: dict[str, float | None] = {k: percentile(v, 50) for k, v in self.parts.items()}
        parts["figures_rows"] = self.figures_rows
        return {
            "cold_ms": self.cold,
            "warm_ms": {key: summarize(values) for key, values in self.warm.items()},
            "steady_ms": summarize(self.steady),
            "stampede": self.stampede,
            "view_parts_ms": parts,
            "page": {
                "indicator": view.indicator,
                "components": {c.name: c.status for c in view.components},
                "uptime_90d": {
                    c.name: c.history.uptime_for("90d") for c in view.components if c.history
                },
                "days_with_figures": sum(1 for day in days if day.requests),
                "requests_on_bars": sum(day.requests for day in days),
                "incidents_shown": len(view.incidents),
                "html_bytes": len(self.html.encode()),
                "summary_json_bytes": len(orjson.dumps(summary_json(view))),
            },
        }


async def time_builds(
    dbs: dict[str, Path], plan: Plan, opened: list[IncidentRow], builds: int
) -> dict[str, dict[str, Any]]:
    """The page's builds from each database, interleaved build by build (in a shuffled
    order, so that neither a burst of noise on this shared machine nor anything
    periodic, a garbage collection say, falls on one of them only).

    The collector is set as ``standby serve`` sets it (``standby/web/serve.py``: what
    exists at start frozen, young objects collected every 20,000 allocations): a full
    collection of this process's heap (the seeding's leftovers) is no cost of a build.
    """
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    each = {name: Builds(db, plan, opened) for name, db in dbs.items()}
    names = list(each)
    order = random.Random(20261203)
    try:
        for name in names:
            await each[name].first()
        for step in (Builds.afresh, Builds.expired):
            for _ in range(builds):
                for name in order.sample(names, len(names)):
                    await step(each[name])
        for name in names:
            await each[name].crowd(STAMPEDE)
        for _ in range(max(5, builds // 5)):
            for name in order.sample(names, len(names)):
                await each[name].apart()
    finally:
        for builder in each.values():
            await builder.close()
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    return {name: builder.results() for name, builder in each.items()}


def flush() -> float:
    """Write the database out (``sync``) before measuring, so the kernel's writeback of
    a freshly written gigabyte does not compete with the builds; the seconds it took."""
    started = time.perf_counter()
    os.sync()
    return time.perf_counter() - started


async def render_phase(
    s: Settings, db: Path, plan: Plan, opened: list[IncidentRow], figures: list[rig.Figures]
) -> dict[str, Any]:
    """Builds from the journal with ``requests`` empty (a copy made before the bulk
    insert: the baseline) and with it full, interleaved."""
    baseline = db.with_name("baseline.db")
    seeding.copy_database(db, baseline)
    log(f"render: inserting {s.request_rows:,} requests rows (executemany)")
    inserted, seconds = seeding.add_requests(db, figures, s.request_rows, time.time())
    synced = flush()
    log(f"render: {s.builds} builds of each kind, empty and {inserted:,} rows, interleaved")
    found = await time_builds({"empty": baseline, "full": db}, plan, opened, s.builds)
    baseline.unlink()
    routes = sorted({r for _, _, routes in components_of(plan) for r in routes})
    since = int((time.time() - rig.DAYS * rig.DAY) // rig.HOUR) * rig.HOUR
    return {
        **found,
        "requests_rows": inserted,
        "insert_seconds": seconds,
        "sync_seconds": synced,
        "traffic_query_plan": seeding.explain_traffic_query(db, routes, since),
        "sizes": seeding.sizes(db),
    }


# -- the command ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.statuspage_bench",
        description=__doc__.split("\n\n")[0] if __doc__ else "",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run (~1 min)")
    parser.add_argument(
        "--only", default=",".join(PHASES), help="render,flood,background (default: all)"
    )
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    parser.add_argument("--reps", type=int, help="quiet/flood pairs (default 3, quick 1)")
    parser.add_argument("--request-rows", type=int, help="requests rows to insert (1,000,000)")
    parser.add_argument("--flood-rate", type=float, help="visitors' requests/s (2000)")
    parser.add_argument(
        "--sweep", help="smaller visitor rates, one pair each, comma-separated (10)"
    )
    parser.add_argument("--upstream", choices=("sim", "node"), default="sim")
    args = parser.parse_args(argv)
    args.only = [p for p in args.only.split(",") if p]
    if unknown := set(args.only) - set(PHASES):
        parser.error(f"unknown phases {sorted(unknown)}")
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    s = Settings.quick() if args.quick else Settings()
    s = replace(s, upstream=args.upstream)
    if args.reps is not None:
        s = replace(s, reps=max(1, args.reps))
    if args.request_rows is not None:
        s = replace(s, request_rows=max(0, args.request_rows))
    if args.flood_rate is not None:
        s = replace(s, flood_rate=args.flood_rate)
    if args.sweep is not None:
        s = replace(s, sweep=tuple(float(x) for x in args.sweep.split(",") if x))
    return s


def notes(results: dict[str, Any]) -> list[str]:
    found = []
    if len(set(results["source_digests"].values())) > 1:
        found.append(
            "the source of `standby/` changed during the run: phases may have run different code"
        )
    if results["machine"]["loadavg_start"][0] > 0.5:
        found.append(f"load average {results['machine']['loadavg_start'][0]} at start: noisy")
    for flood in (
        results.get("flood"),
        results.get("flood_shared_core"),
        results.get("flood_in_gateway"),
    ):
        if not flood:
            continue
        for level in flood["levels"]:
            lag = max(
                p[side]["send_lag_ms"]["p99"] or 0.0
                for p in level["pairs"]
                for side in ("quiet", "flood")
            )
            if lag > 5:
                found.append(
                    f"at {level['rate']:g} visitors/s the API generator sent up to {lag:.1f} ms "
                    "late (p99), counted in the latency (open loop)"
                )
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    s = settings_from(args)
    raise_nofile()
    started_at = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="standby-statuspage-bench-"))
    directory = workdir / "gateway"
    directory.mkdir()
    db = directory / "standby.db"
    # the standby this process imported (and the gateway runs): PYTHONPATH may name
    # another tree's, say a `git archive` of HEAD while the working tree is being edited
    package = Path(standby.__file__).resolve().parent
    results: dict[str, Any] = {
        "command": "python -m bench.statuspage_bench " + " ".join(argv or sys.argv[1:]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "settings": asdict(s),
        "machine": machine.facts(ROOT),
        "standby": str(package),
        "source_digests": {"start": machine.source_digest(package)},
    }
    watch = machine.CpuWatch()

    async def run() -> None:
        sampler = asyncio.create_task(watch.run())
        try:
            with ProcessSet(workdir) as procs:
                pin_self("1")  # nothing of ours runs on core 1 before the gateway does
                now = time.time()
                log(f"seeding {s.total_requests:,} requests' worth of figures in {db}")
                seeded, figures, incidents = await seeding.seed(db, now, s.total_requests)
                results["seeded"] = seeded.as_dict()
                plan = rig.bench_plan()
                opened = [i for i in incidents if i.open]
                if "render" in args.only:
                    results["render"] = await render_phase(s, db, plan, opened, figures)
                elif s.request_rows:
                    seeding.add_requests(db, figures, s.request_rows, now)
                    flush()
                pin_self(journal_rig.LOAD_CPUS)
                if "flood" in args.only or "background" in args.only:
                    log(f"starting the {s.upstream} upstreams")
                    bases = await journal_rig.start_upstreams(procs, s.upstream)
                if "flood" in args.only:
                    # the page in its own process, which leaves the pinned gateway's core
                    # by itself (here for the load's: whatever it costs them counts
                    # against the API), then forced onto the gateway's core, then in the
                    # gateway's process
                    results["flood"] = await flood_phase(procs, s, bases, workdir, directory)
                    results["flood_shared_core"] = await flood_phase(
                        procs, s, bases, workdir, directory, page_core=journal_rig.GATEWAY_CPUS
                    )
                    results["flood_in_gateway"] = await flood_phase(
                        procs, s, bases, workdir, directory, own_page=False
                    )
                if "background" in args.only:
                    log(f"background: {s.background_reps} pair(s), subscriptions on / off")
                    results["background"] = await background_phase(
                        procs, s, bases, workdir, directory
                    )
                results["ours"] = sorted(procs.started)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler

    try:
        asyncio.run(run())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # the database (~1.5 GB), logs, scripts
    results["source_digests"]["end"] = machine.source_digest(package)
    results["foreign"] = watch.foreign(set(results.pop("ours", [])) | {os.getpgrp()})
    results["took_s"] = time.perf_counter() - started_at
    results["notes"] = notes(results)
    journal_rig.record(results, args.out, render_report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
