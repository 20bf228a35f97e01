"""What the journal costs on the request path: the same gateway with it on and off.

    python -m bench.journal_overhead [--quick] [--only latency,saturation] [--out NAME]

Two gateways on core 1 (one journaling into SQLite in the scratch directory, one with
``journal: {enabled: false}``) in front of the same two simulated upstreams on core 0,
measured alternately in one invocation:

* ``latency`` — open loop at fixed rates (50 and 500 req/s); each side's p50 and p99 and
  the per-pair difference (on - off);
* ``saturation`` — closed loop, ``wrk`` with 32 connections (``bench.saturate``), 10 s a
  side; requests/s, the CPU per request of the gateway and its journal follower, and the
  ratio on / off per pair.  With ``--baseline-tree PATH`` a third gateway, journal on,
  runs the standby of another source tree (say, this one with ``standby/journal`` as it
  was) in the same rotation: before / off is reported beside on / off.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import client, journal_rig
from bench.journal_rig import Gateway
from bench.load import open_loop
from bench.processes import ProcessSet, cpu_seconds, raise_nofile
from bench.saturate import saturate

SIDES = ("journal_on", "journal_off")
PHASES = ("latency", "saturation")


BEFORE = "journal_before"  # journal on, another source tree (--baseline-tree)


async def start(
    procs: ProcessSet, workdir: Path, baseline: Path | None = None
) -> dict[str, Gateway]:
    bases = await journal_rig.start_upstreams(procs)
    gateways = {}
    for side in SIDES:
        gateway = journal_rig.make_gateway(workdir, side, bases, journal=side == "journal_on")
        await journal_rig.start(procs, gateway)
        gateways[side] = gateway
    if baseline is not None:
        gateway = journal_rig.make_gateway(workdir, BEFORE, bases, tree=baseline)
        await journal_rig.start(procs, gateway)
        gateways[BEFORE] = gateway
    return gateways


def _order(rep: int, sides: tuple[str, ...] = SIDES) -> tuple[str, ...]:
    return sides if rep % 2 == 0 else sides[::-1]


async def measure(
    gateways: dict[str, Gateway], rates: list[tuple[float, float]], reps: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    gateways = {side: gateways[side] for side in SIDES}  # (not the baseline tree's)
    async with client.new_session(1000, 30.0) as session:
        for gateway in gateways.values():  # warm-up, not recorded
            await open_loop(
                lambda t, u=gateway.chat_url: client.chat(session, u, t),
                200,
                2.0,
                request_timeout=30.0,
            )
        for rate, duration in rates:
            pairs = []
            for rep in range(reps):
                pair = {}
                for side in _order(rep):
                    gateway = gateways[side]
                    before = await _counters(session, gateway)
                    run = await open_loop(
                        lambda t, u=gateway.chat_url: client.chat(session, u, t),
                        rate,
                        duration,
                        request_timeout=30.0,
                    )
                    after = await _counters(session, gateway)
                    pair[side] = run.to_json()
                    elapsed = after[0] - before[0]
                    pair[side]["cpu_percent"] = (after[1] - before[1]) / elapsed * 100
                    pair[side]["transactions_s"] = (after[2] - before[2]) / elapsed
                    await asyncio.sleep(0.3)
                pairs.append(pair)
            row: dict[str, Any] = {}
            for q in ("p50", "p99"):
                on = [p["journal_on"]["latency_ok_ms"][q] for p in pairs]
                off = [p["journal_off"]["latency_ok_ms"][q] for p in pairs]
                row[q] = {
                    "on": statistics.median(on),
                    "off": statistics.median(off),
                    "difference": statistics.median(a - b for a, b in zip(on, off, strict=True)),
                }
            row["failed"] = {
                side: sum(p[side]["sent"] - p[side]["ok"] for p in pairs) for side in SIDES
            }
            row["cpu_percent"] = {
                side: statistics.median(p[side]["cpu_percent"] for p in pairs) for side in SIDES
            }
            row["transactions_s"] = statistics.median(
                p["journal_on"]["transactions_s"] for p in pairs
            )
            out[f"{rate:g}"] = row
    return out


async def _counters(session: aiohttp.ClientSession, gateway: Gateway) -> tuple[float, float, int]:
    """Now, CPU seconds of the gateway and its follower, the journal's transactions."""
    batches = 0
    if gateway.name == "journal_on":
        batches = int((await journal_rig.journal_status(session, gateway)).get("batches") or 0)
    return time.perf_counter(), journal_rig.tree_cpu_seconds(gateway.pid), batches


async def saturation(
    gateways: dict[str, Gateway], workdir: Path, duration: float, reps: int
) -> dict[str, Any]:
    """wrk (or aiohttp) against each side in turn; requests/s and CPU per request."""
    sides = tuple(gateways)
    for gateway in gateways.values():  # warm-up, not recorded
        await saturate(gateway.chat_url, 32, 2.0, workdir)
    pairs = []
    for rep in range(reps):
        pair = {}
        for side in _order(rep, sides):
            gateway = gateways[side]
            before = journal_rig.tree_cpu_seconds(gateway.pid)
            alone = cpu_seconds(gateway.pid)
            result = await saturate(gateway.chat_url, 32, duration, workdir)
            cpu = journal_rig.tree_cpu_seconds(gateway.pid) - before
            alone = cpu_seconds(gateway.pid) - alone
            result["gateway_cpu_s"] = cpu
            result["cpu_us_per_request"] = cpu / max(1, result["requests"]) * 1e6
            # the request path's own: the follower runs on another core when there is one
            result["gateway_alone_us_per_request"] = alone / max(1, result["requests"]) * 1e6
            pair[side] = result
            await asyncio.sleep(1.0)  # the journal side's writer drains between turns
        pair["ratio"] = pair["journal_on"]["ok_rps"] / pair["journal_off"]["ok_rps"]
        if BEFORE in pair:
            pair["ratio_before"] = pair[BEFORE]["ok_rps"] / pair["journal_off"]["ok_rps"]
        pairs.append(pair)
    return {
        "pairs": pairs,
        "ratio": statistics.median(p["ratio"] for p in pairs),
        "ratio_before": (
            statistics.median(p["ratio_before"] for p in pairs) if BEFORE in sides else None
        ),
        "rps": {side: statistics.median(p[side]["ok_rps"] for p in pairs) for side in sides},
        "cpu_us": {
            side: statistics.median(p[side]["cpu_us_per_request"] for p in pairs) for side in sides
        },
        "gateway_alone_us": {
            side: statistics.median(p[side]["gateway_alone_us_per_request"] for p in pairs)
            for side in sides
        },
        "errors": {
            side: sum(p[side]["non_2xx"] + p[side]["socket_errors"] for p in pairs)
            for side in sides
        },
        "engine": pairs[0]["journal_on"]["engine"] if pairs else None,
    }


def render(results: dict[str, Any]) -> str:
    lines = [
        f"# Journal on vs off — {results['started']}",
        "",
        f"- command: `{results['command']}`",
        f"- load average at start {results['loadavg']}, at end {results.get('loadavg_end')}",
        "- gateways pinned to core 1, upstreams and load on core 0",
        "",
    ]
    if "rates" in results:
        lines += [
            "| rate | quantile | journal on | journal off | difference (median of pairs) |",
            "|---|---|---:|---:|---:|",
        ]
        for rate, row in results["rates"].items():
            for q in ("p50", "p99"):
                r = row[q]
                lines.append(
                    f"| {rate} req/s | {q} | {r['on']:.2f} ms | {r['off']:.2f} ms | "
                    f"{r['difference']:+.2f} ms |"
                )
            lines.append(
                f"| {rate} req/s | failed | {row['failed']['journal_on']} | "
                f"{row['failed']['journal_off']} | |"
            )
            lines.append(
                f"| {rate} req/s | CPU, gateway + follower | "
                f"{row['cpu_percent']['journal_on']:.1f} % | "
                f"{row['cpu_percent']['journal_off']:.1f} % | "
                f"journal transactions/s: {row['transactions_s']:.1f} |"
            )
        lines.append("")
    if "saturation" in results:
        sat = results["saturation"]
        alone = sat.get("gateway_alone_us")  # (runs before 2026-12-04 have none)
        ratios = ", ".join(f"{p['ratio']:.3f}" for p in sat["pairs"])
        lines += [
            f"Saturation ({sat['engine']}, 32 connections, non-streaming):",
            "",
            "| | journal on | journal off | on / off (median of pairs) |",
            "|---|---:|---:|---:|",
            f"| requests/s | {sat['rps']['journal_on']:,.0f} | {sat['rps']['journal_off']:,.0f} "
            f"| x{sat['ratio']:.3f} (pairs {ratios}) |",
            f"| CPU per request, gateway + follower | {sat['cpu_us']['journal_on']:.0f} µs "
            f"| {sat['cpu_us']['journal_off']:.0f} µs | |",
            *(
                [
                    f"| CPU per request, the gateway alone | {alone['journal_on']:.0f} µs "
                    f"| {alone['journal_off']:.0f} µs "
                    f"| x{alone['journal_off'] / alone['journal_on']:.3f} (off / on) |"
                ]
                if alone
                else []
            ),
            f"| non-2xx + socket errors | {sat['errors']['journal_on']} "
            f"| {sat['errors']['journal_off']} | |",
            "",
        ]
        if sat.get("ratio_before") is not None:
            before = ", ".join(f"{p['ratio_before']:.3f}" for p in sat["pairs"])
            lines += [
                f"Journal on, baseline tree `{results.get('baseline_tree')}`: "
                f"{sat['rps'][BEFORE]:,.0f} requests/s, {sat['cpu_us'][BEFORE]:.0f} µs CPU "
                f"per request, before / off x{sat['ratio_before']:.3f} (pairs {before}); "
                f"errors {sat['errors'][BEFORE]}.",
                "",
            ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="short phases (~40 s)")
    parser.add_argument("--only", default=",".join(PHASES), help="latency,saturation")
    parser.add_argument("--reps", type=int, help="pairs per measurement (default 3, quick 1)")
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    parser.add_argument(
        "--baseline-tree", type=Path, help="saturation: also a gateway from this source tree"
    )
    args = parser.parse_args(argv)
    phases = [p for p in args.only.split(",") if p]
    if unknown := set(phases) - set(PHASES):
        parser.error(f"unknown phases {sorted(unknown)}")
    raise_nofile()
    rates = [(50.0, 4.0), (500.0, 3.0)] if args.quick else [(50.0, 8.0), (500.0, 8.0)]
    reps = args.reps or (1 if args.quick else 3)
    seconds = 3.0 if args.quick else 10.0
    workdir = Path(tempfile.mkdtemp(prefix="standby-journal-bench-"))
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    results: dict[str, Any] = {
        "command": "python -m bench.journal_overhead " + " ".join(argv or sys.argv[1:]),
        "started": started,
        "loadavg": journal_rig.loadavg(),
        "baseline_tree": str(args.baseline_tree) if args.baseline_tree else None,
    }

    async def run() -> None:
        with ProcessSet(workdir) as procs:
            gateways = await start(procs, workdir, args.baseline_tree)
            if "latency" in phases:
                results["rates"] = await measure(gateways, rates, reps)
            if "saturation" in phases:
                results["saturation"] = await saturation(gateways, workdir, seconds, reps)

    try:
        asyncio.run(run())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # gateways' journals, logs
    journal_rig.record(results, args.out, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
