"""Replicas sharing state through Redis (issue 12): what a failing primary costs a cluster,
and what sharing costs a request.

    python -m bench.cluster_bench [--rate 60] [--seconds 15] [--reps 3] [--out …]

1. **Primary hits per client request during an outage.** The primary sim answers 503 to
   everything; a client sends ``--rate`` requests/s, round-robin over the replicas, for
   ``--seconds``; the primary's own counter says how many reached it (requests and
   probes), and each replica's metrics which of them it sent.  One replica; three
   replicas sharing state; three replicas without.  Target: three sharing replicas no
   worse than one.
2. **The hot path with ``state:`` on and off.** One replica, 200 requests/s, open loop,
   alternating pairs; the same requests straight to the upstream in the same seconds, and
   the gateway's own latency is the difference.  Target: added p99 ≤ 0.2 ms.

Gateways on core 1, upstreams, Redis's clients and the load on core 0 (as the other
benches); the machine's Redis on 127.0.0.1:6379 (database 14, a prefix of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import client, journal_rig, machine
from bench.journal_rig import Gateway
from bench.load import open_loop
from bench.processes import ProcessSet, free_port
from bench.stack import MODEL
from bench.stats import diff

ROOT = Path(__file__).resolve().parents[1]
REDIS = "redis://127.0.0.1:6379/14"
LATENCY_RATE = 200.0
LATENCY_SECONDS = 10.0
TARGET_ADDED_P99_MS = 0.2


def _log(text: str) -> None:
    print(f"[cluster] {text}", file=sys.stderr, flush=True)


def _plan(bases: dict[str, str], state: str) -> str:
    return (
        journal_rig.PLAN.format(primary=bases["primary"], backup=bases["backup"], model=MODEL)
        + "journal: {enabled: false}\n"
        + state
    )


async def _gateways(
    procs: ProcessSet, workdir: Path, bases: dict[str, str], count: int, state: str, tag: str
) -> list[Gateway]:
    found = []
    for n in range(count):
        directory = workdir / f"{tag}-{n}"
        directory.mkdir()
        (directory / "plan.yaml").write_text(_plan(bases, state))
        gateway = Gateway(f"{tag}-{n}", directory, free_port())
        await journal_rig.start(procs, gateway, within=60.0)
        found.append(gateway)
    return found


def _admin(base: str) -> str:
    return base.removesuffix("/v1")


async def _primary_count(session: aiohttp.ClientSession, bases: dict[str, str]) -> int:
    async with session.get(f"{_admin(bases['primary'])}/_sim/stats") as resp:
        return int((await resp.json())["count"])


async def _attempts_on_primary(session: aiohttp.ClientSession, gateway: Gateway) -> int:
    """The attempts (requests' and probes') ``gateway`` sent the primary: its metrics."""
    async with session.get(f"{gateway.base}/metrics") as resp:
        text = await resp.text()
    wanted = f'target="primary/{MODEL}"'
    return round(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("standby_attempts_total{") and wanted in line
        )
    )


async def outage(
    session: aiohttp.ClientSession,
    procs: ProcessSet,
    workdir: Path,
    bases: dict[str, str],
    count: int,
    state: str,
    tag: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Primary hits per client request, ``count`` replicas, the primary failing."""
    gateways = await _gateways(procs, workdir, bases, count, state, tag)
    try:
        await asyncio.sleep(1.0)  # replicas connected to Redis, a lease taken
        fault = {"kind": "error", "status": 503}
        async with session.post(f"{_admin(bases['primary'])}/_sim/fault", json=fault) as resp:
            assert resp.status in (200, 204), await resp.text()
        before = await _primary_count(session, bases)
        urls = itertools.cycle([g.chat_url for g in gateways])
        run = await open_loop(
            lambda t: client.chat(session, next(urls), t), args.rate, args.seconds
        )
        hits = await _primary_count(session, bases) - before
        # who sent them: each replica's own count (it includes the warm-up's few)
        each = [await _attempts_on_primary(session, g) for g in gateways]
        sent = len(run.results)
        ok = len(run.ok)
        return {"replicas": count, "sent": sent, "ok": ok, "primary_hits": hits,
                "per_replica": each,
                "hits_per_request": hits / sent if sent else None}  # fmt: skip
    finally:
        async with session.delete(f"{_admin(bases['primary'])}/_sim/fault") as resp:
            await resp.read()
        for gateway in gateways:
            journal_rig.stop(procs, gateway)


async def latency_side(
    session: aiohttp.ClientSession, gateway: Gateway, bases: dict[str, str]
) -> dict[str, Any]:
    direct_url = f"{bases['primary']}/chat/completions"
    run, direct = await asyncio.gather(
        open_loop(
            lambda t: client.chat(session, gateway.chat_url, t), LATENCY_RATE, LATENCY_SECONDS
        ),
        open_loop(lambda t: client.chat(session, direct_url, t), LATENCY_RATE, LATENCY_SECONDS),
    )
    mine, theirs = run.to_json()["latency_ok_ms"], direct.to_json()["latency_ok_ms"]
    return {
        "gateway_ms": mine,
        "direct_ms": theirs,
        "added_ms": {q: diff(mine[q], theirs[q]) for q in ("p50", "p99")},
        "failed": len(run.results) - len(run.ok),
    }


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    prefix = f"bench-{secrets.token_hex(4)}"
    state_on = f'state: {{url: "{REDIS}", prefix: "{prefix}", lease: 3s}}\n'
    results: dict[str, Any] = {"outage": {}, "latency": []}
    with ProcessSet(workdir) as procs:
        bases = await journal_rig.start_upstreams(procs, "sim")
        async with client.new_session(1000, 30.0) as session:
            for rep in range(args.reps):
                for tag, count, state in (
                    ("one", 1, ""),
                    ("three-shared", 3, state_on.replace(prefix, f"{prefix}-{rep}")),
                    ("three-alone", 3, ""),
                ):
                    found = await outage(
                        session, procs, workdir, bases, count, state, f"{tag}-{rep}", args
                    )
                    results["outage"].setdefault(tag, []).append(found)
                    _log(
                        f"outage {tag} rep {rep + 1}: {found['hits_per_request']:.3f} hits/request"
                    )
            for rep in range(args.reps):
                pair: dict[str, Any] = {}
                order = ("on", "off") if rep % 2 == 0 else ("off", "on")
                for side in order:
                    state = state_on.replace(prefix, f"{prefix}-lat-{rep}") if side == "on" else ""
                    [gateway] = await _gateways(
                        procs, workdir, bases, 1, state, f"lat-{side}-{rep}"
                    )
                    try:
                        await latency_side(session, gateway, bases)  # warm-up, not kept
                        pair[side] = await latency_side(session, gateway, bases)
                    finally:
                        journal_rig.stop(procs, gateway)
                pair["difference_added_p99"] = diff(
                    pair["on"]["added_ms"]["p99"], pair["off"]["added_ms"]["p99"]
                )
                results["latency"].append(pair)
                _log(f"latency pair {rep + 1}: added p99 on - off {pair['difference_added_p99']}")
    return results


def render(results: dict[str, Any]) -> str:
    lines = [
        f"# Replicas sharing state — {results['started']}",
        "",
        f"- command: `{results['command']}`",
        f"- machine: {results['machine']['nproc']} CPUs, {results['machine']['cpu_model']}, "
        f"Python {results['machine']['python']}",
        f"- load average at start {results['machine']['loadavg_start']}, at end "
        f"{results.get('loadavg_end')}",
        "",
        "## 1. Primary hits per client request, the primary answering 503 to everything",
        "",
        f"{results['rate']:g} requests/s round-robin over the replicas for "
        f"{results['seconds']:g} s (probes on, as by default; hits are requests and probes "
        "that reached the primary).",
        "",
        "| layout | reps | client requests (each) | answered | primary hits (each) "
        "| attempts sent by each replica, with its warm-up request (each rep) "
        "| hits per request (median) |",
        "|---|---:|---|---|---|---|---:|",
    ]
    for tag, label in (
        ("one", "one replica"),
        ("three-shared", "three replicas, `state:` on"),
        ("three-alone", "three replicas, each on its own"),
    ):
        runs = results["outage"].get(tag, [])
        if not runs:
            continue
        lines.append(
            f"| {label} | {len(runs)} | {', '.join(str(r['sent']) for r in runs)} "
            f"| {', '.join(str(r['ok']) for r in runs)} "
            f"| {', '.join(str(r['primary_hits']) for r in runs)} "
            f"| {'; '.join('/'.join(map(str, r.get('per_replica', []))) for r in runs)} "
            f"| {statistics.median(r['hits_per_request'] for r in runs):.3f} |"
        )
    pairs = results["latency"]
    if pairs:
        each = [p["difference_added_p99"] for p in pairs if p["difference_added_p99"] is not None]
        median = statistics.median(each) if each else None
        lines += [
            "",
            "## 2. The hot path, `state:` on and off (one replica, 200 req/s, open loop)",
            "",
            "| pair | added p50 on / off | added p99 on / off | on - off (p99) |",
            "|---:|---|---|---:|",
        ]
        for n, p in enumerate(pairs, 1):
            on, off = p["on"]["added_ms"], p["off"]["added_ms"]
            lines.append(
                f"| {n} | {on['p50']:.2f} / {off['p50']:.2f} ms | {on['p99']:.2f} / "
                f"{off['p99']:.2f} ms | {p['difference_added_p99']:+.2f} ms |"
            )
        if median is not None:
            met = "met" if median <= TARGET_ADDED_P99_MS else "NOT met"
            lines += ["", f"Median on - off: {median:+.2f} ms (target ≤ +0.2 ms: {met})."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--rate", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "command": "python -m bench.cluster_bench " + " ".join(argv or sys.argv[1:]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine.facts(ROOT),
        "rate": args.rate,
        "seconds": args.seconds,
    }
    workdir = Path(tempfile.mkdtemp(prefix="standby-cluster-bench-"))
    try:
        results.update(asyncio.run(run(args, workdir)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    journal_rig.record(results, args.out, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
