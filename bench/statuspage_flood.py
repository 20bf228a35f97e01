"""The status page benchmark, part 2: the API's latency with and without a flood of visitors
during an outage (``python -m bench.statuspage_bench --only flood``)."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import client, journal_rig
from bench import statuspage_rig as rig
from bench import statuspage_visitors as crowd
from bench.journal_rig import Gateway
from bench.load import open_loop
from bench.processes import ProcessSet, children, cpu_seconds, free_port
from bench.stats import diff
from bench.statuspage_profile import profile
from bench.statuspage_report import _f
from bench.statuspage_settings import OUTAGE, P99_TARGET_MS, Settings, log

# -- 2. visitors during an outage ----------------------------------------------------------------


@dataclass
class Bed:
    """The running test bed: the gateway and where its pages are."""

    gateway: Gateway
    workdir: Path
    page_port: int | None = None  # the page's own process (None: the gateway serves it)
    page_core: str | None = None  # the core the bench put the page's process on (None: its own)
    direct_url: str = ""  # the primary upstream's own chat URL: the same requests, direct
    # each page's ETags as the bench fetched them: kind → (time.monotonic(), ETag); what
    # the visitors of a later flood hold (the pages' max-age ago)
    seen: dict[str, list[tuple[float, str]]] = field(
        default_factory=lambda: {"html": [], "json": []}
    )

    @property
    def base(self) -> str:
        return self.gateway.base

    @property
    def page_base(self) -> str:
        """Where visitors go: the page's own address, or the gateway's."""
        return self.base if self.page_port is None else f"http://127.0.0.1:{self.page_port}"

    @property
    def placement(self) -> str:
        if self.page_port is None:
            return "gateway"
        if self.page_core is None:
            return "own process"
        return f"own process forced onto core {self.page_core}"

    async def remember(self, session: aiohttp.ClientSession) -> None:
        """Fetch both pages once and keep their ETags with the time."""
        for kind, path in (("html", crowd.PAGE), ("json", crowd.SUMMARY)):
            async with session.get(f"{self.page_base}{path}") as resp:
                await resp.read()
                tag = resp.headers.get("etag")
            if tag and all(c.isalnum() or c == '"' for c in tag):
                self.seen[kind].append((time.monotonic(), tag))


async def start_bed(
    procs: ProcessSet,
    bases: dict[str, str],
    workdir: Path,
    directory: Path,
    *,
    subscriptions: bool = True,
    own_page: bool = True,
    page_core: str | None = None,
    name: str = "gateway",
) -> Bed:
    """The gateway on core 1 in ``directory`` (the seeded journal), in front of the
    upstreams at ``bases``; ``subscriptions=False``: the plan turns them off;
    ``own_page``: the page on its own address, served by its own process (which the
    gateway starts: it runs on core 1 too, at a lower priority)."""
    page_port = free_port() if own_page else None
    plan = rig.plan_text(
        bases["primary"],
        bases["backup"],
        subscriptions=subscriptions,
        page_listen=f"127.0.0.1:{page_port}" if page_port is not None else "",
    )
    (directory / "plan.yaml").write_text(plan)
    gateway = Gateway(name, directory, free_port())
    await journal_rig.start(procs, gateway, within=60.0)
    if page_port is not None and page_core is not None:
        # the page's process (the gateway's only child) forced onto given cores (it
        # leaves a pinned gateway's cores by itself)
        for child in children(gateway.pid):
            os.sched_setaffinity(child, {int(c) for c in page_core.split(",")})
    return Bed(gateway, workdir, page_port, page_core, f"{bases['primary']}/chat/completions")


async def declare_outage(session: aiohttp.ClientSession, bed: Bed) -> dict[str, Any]:
    """Open the incident through the admin API; what the page says then."""
    async with session.post(f"{bed.base}/standby/incidents", json=OUTAGE) as resp:
        opened = await resp.json()
        status = resp.status
    summary: dict[str, Any] = {}
    for _ in range(100):  # the page's own process reads the incidents every second
        async with session.get(f"{bed.page_base}{crowd.SUMMARY}") as resp:
            summary = await resp.json()
        if summary["status"]["indicator"] == "critical":
            break
        await asyncio.sleep(0.1)
    components = {c["name"]: c["status"] for c in summary["components"]}
    if summary["status"]["indicator"] != "critical":
        raise RuntimeError(f"the page is not in a major outage: {summary['status']}")
    return {
        "http_status": status,
        "incident": opened.get("id"),
        "indicator": summary["status"]["indicator"],
        "description": summary["status"]["description"],
        "components": components,
        "unresolved": len(summary["incidents"]),
    }


async def api_side(
    session: aiohttp.ClientSession,
    bed: Bed,
    s: Settings,
    duration: float,
    visitors: crowd.Visitors | None,
    name: str,
    *,
    remember: bool = True,
) -> dict[str, Any]:
    """Chat completions for ``duration`` s, alone or while ``visitors`` flood the page;
    first the pages' ETags are fetched for later visitors (unless ``remember`` is off)."""
    wrk = None
    if remember:
        await bed.remember(session)
    if visitors is not None:
        wrk = await crowd.start_wrk(bed, visitors, duration + 2.0, s.flood_connections, name)
        await asyncio.sleep(1.0)  # the flood is under way before the first measured request
    pid = bed.gateway.pid
    try:
        cpu, main_cpu, started = (
            journal_rig.tree_cpu_seconds(pid),
            cpu_seconds(pid),
            time.perf_counter(),
        )
        # the same requests straight to the primary upstream in the same seconds: what
        # the gateway adds is the difference, whatever the flood costs the machine's
        # other core (the upstreams, the load generators) cancels out
        run, direct = await asyncio.gather(
            open_loop(
                lambda t: client.chat(session, bed.gateway.chat_url, t),
                s.api_rate,
                duration,
                request_timeout=30.0,
            ),
            open_loop(
                lambda t: client.chat(session, bed.direct_url, t),
                s.api_rate,
                duration,
                request_timeout=30.0,
            ),
        )
        elapsed = time.perf_counter() - started
        used = journal_rig.tree_cpu_seconds(pid) - cpu
        side = run.to_json()
        side["direct_latency_ok_ms"] = direct.to_json()["latency_ok_ms"]
        side["added_ms"] = {
            q: diff(side["latency_ok_ms"][q], side["direct_latency_ok_ms"][q])
            for q in ("p50", "p99")
        }
        side["gateway_cpu_s"] = used
        side["gateway_cpu_percent"] = used / elapsed * 100
        side["follower_cpu_percent"] = (used - (cpu_seconds(pid) - main_cpu)) / elapsed * 100
        if wrk is not None:
            side["flood"] = await crowd.finish_wrk(wrk, duration + 2.0)
            wrk = None
    finally:
        if wrk is not None and wrk.returncode is None:
            wrk.kill()
            await wrk.wait()
    return side


async def settle(pid: int, within: float = 60.0) -> float:
    """Wait until the gateway is idle again (< 10 % of its core over 0.5 s, twice): the
    page requests a flood left in flight go on after their visitors left.  Returns the
    seconds it took."""
    started = time.perf_counter()
    calm = 0
    while time.perf_counter() - started < within and calm < 2:
        before = journal_rig.tree_cpu_seconds(pid)
        await asyncio.sleep(0.5)
        calm = calm + 1 if journal_rig.tree_cpu_seconds(pid) - before < 0.05 else 0
    return time.perf_counter() - started


async def pairs(
    session: aiohttp.ClientSession,
    bed: Bed,
    s: Settings,
    rate: float,
    reps: int,
    duration: float,
) -> dict[str, Any]:
    """``reps`` pairs (quiet, flood), the side going first alternating."""
    visitors = crowd.Visitors(rate=rate, revalidate=s.revalidate)
    done = []
    for rep in range(reps):
        order = ("quiet", "flood") if rep % 2 == 0 else ("flood", "quiet")
        pair: dict[str, Any] = {}
        for side in order:
            chosen = visitors if side == "flood" else None
            pair[side] = await api_side(session, bed, s, duration, chosen, f"flood-{rate:g}-{rep}")
            pair[side]["settled_s"] = await settle(bed.gateway.pid)
        for q in ("p50", "p99"):
            pair[f"difference_{q}"] = diff(
                pair["flood"]["latency_ok_ms"][q], pair["quiet"]["latency_ok_ms"][q]
            )
            pair[f"added_difference_{q}"] = diff(
                pair["flood"]["added_ms"][q], pair["quiet"]["added_ms"][q]
            )
        done.append(pair)
        log(
            f"flood {rate:g}/s pair {rep + 1}: p99 quiet "
            f"{_f(pair['quiet']['latency_ok_ms']['p99'])}, flood "
            f"{_f(pair['flood']['latency_ok_ms']['p99'])}, added p99 quiet "
            f"{_f(pair['quiet']['added_ms']['p99'])}, flood {_f(pair['flood']['added_ms']['p99'])}"
            f", visitors answered "
            f"{pair['flood']['flood']['rate']:.0f}/s"
        )
    return {"rate": rate, "duration_s": duration, "pairs": done, **_medians(done)}


def _medians(done: list[dict[str, Any]]) -> dict[str, Any]:
    def med(*keys: str) -> float | None:
        """The median over pairs of ``pair[k1][k2]…`` (unknown values left out)."""
        values = []
        for pair in done:
            value: Any = pair
            for key in keys:
                value = value[key]
            if value is not None:
                values.append(float(value))
        return statistics.median(values) if values else None

    found: dict[str, Any] = {}
    for q in ("p50", "p99"):
        found[q] = {
            "quiet": med("quiet", "latency_ok_ms", q),
            "flood": med("flood", "latency_ok_ms", q),
            "difference": med(f"difference_{q}"),
            "each": [p[f"difference_{q}"] for p in done],
        }
    for q in ("p50", "p99"):
        found[f"added_{q}"] = {
            "quiet": med("quiet", "added_ms", q),
            "flood": med("flood", "added_ms", q),
            "difference": med(f"added_difference_{q}"),
            "each": [p[f"added_difference_{q}"] for p in done],
        }
    found["visitors_rate"] = med("flood", "flood", "rate")
    found["share_304"] = med("flood", "flood", "share_304")
    found["share_304_of_revalidating"] = med("flood", "flood", "share_304_of_revalidating")
    found["visitor_latency_ms"] = {
        q: med("flood", "flood", "latency_ms", q) for q in ("p50", "p99")
    }
    found["gateway_cpu_percent"] = {
        side: med(side, "gateway_cpu_percent") for side in ("quiet", "flood")
    }
    found["failed"] = {
        side: sum(p[side]["sent"] - p[side]["ok"] + p[side]["shed"] for p in done)
        for side in ("quiet", "flood")
    }
    found["visitor_errors"] = sum(p["flood"]["flood"]["errors"] for p in done)
    found["revalidating"] = sum(p["flood"]["flood"]["revalidating"] for p in done)
    found["answered_304"] = sum(p["flood"]["flood"]["answered_304"] for p in done)
    changes = [
        p["flood"]["flood"]["etag_changes"] / p["flood"]["flood"]["duration_s"] for p in done
    ]
    found["etag_changes_per_s"] = statistics.median(changes)
    found["drain_s"] = med("flood", "settled_s")
    # the gateway's own p99: what it adds over the upstream alone, flood against quiet
    added = found["added_p99"]["difference"]
    found["met"] = added is not None and added <= P99_TARGET_MS
    return found


COSTS = (  # (what, visitors, connections)
    ("/status", crowd.Visitors((crowd.PAGE,), 0.0, 0.0, 0.0), 1),
    ("/status, If-None-Match (newest ETag)", crowd.Visitors((crowd.PAGE,), 0.0, 1.0, 0.0), 1),
    ("summary.json", crowd.Visitors((crowd.SUMMARY,), 0.0, 0.0, 0.0), 1),
    (
        "summary.json, If-None-Match (newest ETag)",
        crowd.Visitors((crowd.SUMMARY,), 0.0, 1.0, 0.0),
        1,
    ),
    ("summary.json, 16 visitors at once", crowd.Visitors((crowd.SUMMARY,), 0.0, 0.0, 0.0), 16),
)


async def costs(bed: Bed, s: Settings) -> list[dict[str, Any]]:
    """Each page alone, as fast as the gateway answers: answers/s and the gateway's CPU
    per answer (the view's rebuild every ``page_ttl`` included)."""
    found = []
    for index, (label, visitors, connections) in enumerate(COSTS):
        pid = bed.gateway.pid
        before = journal_rig.tree_cpu_seconds(pid)
        proc = await crowd.start_wrk(bed, visitors, s.cost_seconds, connections, f"cost-{index}")
        result = await crowd.finish_wrk(proc, s.cost_seconds)
        used = journal_rig.tree_cpu_seconds(pid) - before
        result["label"] = label
        result["connections"] = connections
        result["cpu_us_per_answer"] = used / max(1, result["requests"]) * 1e6
        found.append(result)
        log(f"cost {label}: {result['rate']:.0f}/s, {result['cpu_us_per_answer']:.0f} µs CPU")
        result["settled_s"] = await settle(pid)
    return found


async def flood_phase(
    procs: ProcessSet,
    s: Settings,
    bases: dict[str, str],
    workdir: Path,
    directory: Path,
    *,
    own_page: bool = True,
    page_core: str | None = None,
) -> dict[str, Any]:
    bed = await start_bed(procs, bases, workdir, directory, own_page=own_page, page_core=page_core)
    log(f"flood: the gateway on the seeded journal, the page served by the {bed.placement}")
    found: dict[str, Any] = {"placement": bed.placement}
    async with client.new_session(1000, 30.0) as session:
        found["outage"] = await declare_outage(session, bed)
        log(f"flood: page says {found['outage']['description']!r}; warm-up (not recorded)")
        await api_side(session, bed, s, 2.0, crowd.Visitors(rate=s.flood_rate), "warm-up")
        found["warm_up_settled_s"] = await settle(bed.gateway.pid)
        log(f"flood: {s.reps} pair(s) at {s.flood_rate:g} visitors/s, {s.duration:g} s a side")
        found["levels"] = [await pairs(session, bed, s, s.flood_rate, s.reps, s.duration)]
        for rate in s.sweep:
            found["levels"].append(await pairs(session, bed, s, rate, 1, s.sweep_duration))
        log("flood: each page alone, as fast as answered")
        found["costs"] = await costs(bed, s)
        quiet = [p["quiet"] for p in found["levels"][0]["pairs"]]
        found["chat_cpu_us"] = statistics.median(
            side["gateway_cpu_s"] / max(1, side["ok"]) * 1e6 for side in quiet
        )
        log(f"flood: py-spy profile, {s.profile_seconds:g} s")
        found["profile"] = await profile(session, bed, s)
        async with session.get(f"{bed.base}/standby/incidents?open=true") as resp:
            still = (await resp.json())["data"]
        found["open_incidents_at_end"] = [(i["component"], i["source"]) for i in still]
    journal_rig.stop(procs, bed.gateway)
    return found


async def background_phase(
    procs: ProcessSet, s: Settings, bases: dict[str, str], workdir: Path, directory: Path
) -> dict[str, Any]:
    """No visitor at all, the page served by the gateway (no ``listen``): the API's
    latency with the page's subscriptions on (the plan's default: their delivery round
    asks for the page every 2 s, rebuilt when its figures are read again) and off, a
    fresh gateway on the same journal for each side, in alternating pairs."""
    done = []
    for rep in range(s.background_reps):
        order = (True, False) if rep % 2 == 0 else (False, True)
        pair: dict[str, Any] = {}
        for subscriptions in order:
            side = "subscriptions_on" if subscriptions else "subscriptions_off"
            bed = await start_bed(
                procs,
                bases,
                workdir,
                directory,
                subscriptions=subscriptions,
                own_page=False,  # where the deliveries run on the gateway's loop
                name=side,
            )
            try:
                async with client.new_session(1000, 30.0) as session:
                    # the page is not asked for on either side: only the delivery rounds
                    await api_side(session, bed, s, 2.0, None, "warm-up", remember=False)
                    pair[side] = await api_side(
                        session, bed, s, s.background_duration, None, side, remember=False
                    )
            finally:
                journal_rig.stop(procs, bed.gateway)
        for q in ("p50", "p99"):
            pair[f"difference_{q}"] = diff(
                pair["subscriptions_on"]["latency_ok_ms"][q],
                pair["subscriptions_off"]["latency_ok_ms"][q],
            )
        done.append(pair)
        log(
            f"background pair {rep + 1}: p99 subscriptions on "
            f"{_f(pair['subscriptions_on']['latency_ok_ms']['p99'])}, off "
            f"{_f(pair['subscriptions_off']['latency_ok_ms']['p99'])}"
        )

    def med(side: str, key: str, q: str) -> float | None:
        values = [p[side][key][q] for p in done if p[side][key][q] is not None]
        return statistics.median(values) if values else None

    found: dict[str, Any] = {"pairs": done, "duration_s": s.background_duration}
    for q in ("p50", "p90", "p99", "max"):
        found[q] = {
            "on": med("subscriptions_on", "latency_ok_ms", q),
            "off": med("subscriptions_off", "latency_ok_ms", q),
        }
    for q in ("p50", "p99"):
        each = [p[f"difference_{q}"] for p in done if p[f"difference_{q}"] is not None]
        found[q]["difference"] = statistics.median(each) if each else None
        found[q]["each"] = each
    found["gateway_cpu_percent"] = {
        side: statistics.median(p[side]["gateway_cpu_percent"] for p in done)
        for side in ("subscriptions_on", "subscriptions_off")
    }
    return found
