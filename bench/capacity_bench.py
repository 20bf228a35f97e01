"""What the backup capacity guard costs a request (issue 12, part 3).

    python -m bench.capacity_bench [--reps 3] [--out bench/results/capacity-<date>]

One replica with ``state:`` on (the machine's Redis), 200 requests/s open loop, the same
requests straight to the upstream in the same seconds (the gateway's own latency is the
difference, as in ``cluster_bench``).  Alternating pairs: the target the requests go to
has a ``limits.requests_per_minute`` high enough never to refuse (so every request asks
Redis once), or no limit at all (it asks nothing).  The difference of the added p50/p99
is what the guard's Redis round trip costs a request on a limited target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import client, journal_rig, machine
from bench.cluster_bench import REDIS, latency_side
from bench.journal_rig import Gateway
from bench.processes import ProcessSet, free_port
from bench.stack import MODEL
from bench.stats import diff


def _plan(bases: dict[str, str], state: str, limited: bool) -> str:
    text = journal_rig.PLAN.format(primary=bases["primary"], backup=bases["backup"], model=MODEL)
    if limited:  # the primary's account (the first provider) gets a limit it never reaches
        text = text.replace(
            "max_connections: 1000}",
            "max_connections: 1000, limits: {requests_per_minute: 100000000}}",
            1,
        )
    return text + "journal: {enabled: false}\n" + state


async def run(reps: int, workdir: Path) -> dict[str, Any]:
    prefix = f"bench-capacity-{secrets.token_hex(4)}"
    pairs = []
    with ProcessSet(workdir) as procs:
        bases = await journal_rig.start_upstreams(procs, "sim")
        async with client.new_session(1000, 30.0) as session:
            for rep in range(reps):
                pair: dict[str, Any] = {}
                order = ("limited", "unlimited") if rep % 2 == 0 else ("unlimited", "limited")
                for side in order:
                    state = f'state: {{url: "{REDIS}", prefix: "{prefix}-{rep}-{side}"}}\n'
                    directory = workdir / f"{side}-{rep}"
                    directory.mkdir()
                    (directory / "plan.yaml").write_text(_plan(bases, state, side == "limited"))
                    gateway = Gateway(f"{side}-{rep}", directory, free_port())
                    await journal_rig.start(procs, gateway, within=60.0)
                    try:
                        await latency_side(session, gateway, bases)  # warm-up, not kept
                        pair[side] = await latency_side(session, gateway, bases)
                    finally:
                        journal_rig.stop(procs, gateway)
                for q in ("p50", "p99"):
                    pair[f"difference_added_{q}"] = diff(
                        pair["limited"]["added_ms"][q], pair["unlimited"]["added_ms"][q]
                    )
                pairs.append(pair)
                print(f"[capacity] pair {rep + 1}: {pair['difference_added_p99']}", flush=True)
    return {"pairs": pairs}


def render(results: dict[str, Any]) -> str:
    facts = results["machine"]
    lines = [
        f"# The capacity guard's cost per request — {results['started']}",
        "",
        f"- command: `{results['command']}`",
        f"- machine: {facts['nproc']} CPUs, {facts['cpu_model']}, Python {facts['python']}",
        f"- load average at start: {facts['loadavg_start']}",
        "",
        "One replica, `state:` on, 200 req/s open loop; added = gateway - direct, same seconds.",
        "",
        "| pair | added p50 limited / unlimited | added p99 limited / unlimited "
        "| limited - unlimited (p50, p99) |",
        "|---:|---|---|---|",
    ]
    for n, pair in enumerate(results["pairs"], 1):
        lim, unl = pair["limited"]["added_ms"], pair["unlimited"]["added_ms"]
        p50 = f"{lim['p50']:.2f} / {unl['p50']:.2f} ms"
        p99 = f"{lim['p99']:.2f} / {unl['p99']:.2f} ms"
        both = f"{pair['difference_added_p50']:+.2f}, {pair['difference_added_p99']:+.2f} ms"
        lines.append(f"| {n} | {p50} | {p99} | {both} |")
    p50 = statistics.median(p["difference_added_p50"] for p in results["pairs"])
    p99 = statistics.median(p["difference_added_p99"] for p in results["pairs"])
    lines += ["", f"Median limited - unlimited: p50 {p50:+.2f} ms, p99 {p99:+.2f} ms.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default="", help="write <out>.md and <out>.json")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="capacity-bench-"))
    try:
        results = asyncio.run(run(args.reps, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["started"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    results["command"] = " ".join(["python -m bench.capacity_bench", *argv])
    results["machine"] = machine.facts(Path(__file__).resolve().parent.parent)
    text = render(results)
    print(text)
    if args.out:
        Path(args.out + ".md").write_text(text)
        Path(args.out + ".json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
