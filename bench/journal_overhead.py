"""What the journal costs on the request path: the same gateway with it on and off.

    python -m bench.journal_overhead [--quick] [--out bench/results/NAME]

Two gateways on core 1 (one journaling into SQLite in the scratch directory, one with
``journal: {enabled: false}``) in front of the same two simulated upstreams on core 0,
measured alternately at fixed open-loop rates in one invocation; the report gives each
side's latency and the per-pair difference (on - off).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import client
from bench.load import open_loop
from bench.processes import ProcessSet, free_port, raise_nofile, wait_until
from bench.stack import MODEL, PLAN, STANDBY_BIN, StackSpec, _get_ok, _post_ok, upstream_argv

SIDES = ("journal_on", "journal_off")


async def start(procs: ProcessSet, workdir: Path) -> dict[str, str]:
    spec = StackSpec("sim", 0.005)
    bases = {}
    for name in ("primary", "backup"):
        port = free_port()
        proc = procs.start(name, upstream_argv(spec, name, port), cpus="0")
        bases[name] = f"http://127.0.0.1:{port}/v1"
        await wait_until(functools.partial(_get_ok, f"{bases[name]}/models"), 20, name, proc)
    urls = {}
    for side in SIDES:
        side_dir = workdir / side
        side_dir.mkdir()
        plan = PLAN.format(primary=bases["primary"], backup=bases["backup"], model=MODEL)
        if side == "journal_off":
            plan += "journal: {enabled: false}\n"
        (side_dir / "plan.yaml").write_text(plan)
        port = free_port()
        argv = [
            str(STANDBY_BIN),
            "serve",
            "--plan",
            str(side_dir / "plan.yaml"),
            "--port",
            str(port),
        ]
        proc = procs.start(side, argv, cpus="1")
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        await wait_until(functools.partial(_post_ok, url), 30, side, proc)
        urls[side] = url
    return urls


async def measure(
    urls: dict[str, str], rates: list[tuple[float, float]], reps: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with client.new_session(1000, 30.0) as session:
        for url in urls.values():  # warm-up, not recorded
            await open_loop(
                lambda t, u=url: client.chat(session, u, t), 200, 2.0, request_timeout=30.0
            )
        for rate, duration in rates:
            pairs = []
            for rep in range(reps):
                pair = {}
                for side in SIDES if rep % 2 == 0 else SIDES[::-1]:
                    url = urls[side]
                    run = await open_loop(
                        lambda t, u=url: client.chat(session, u, t),
                        rate,
                        duration,
                        request_timeout=30.0,
                    )
                    pair[side] = run.to_json()
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
            out[f"{rate:g}"] = row
    return out


def render(results: dict[str, Any]) -> str:
    lines = [
        f"# Journal on vs off — {results['started']}",
        "",
        f"- command: `{results['command']}`",
        f"- load average at start {results['loadavg']}",
        "- gateways pinned to core 1, upstreams and load on core 0",
        "",
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
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="short phases (~40 s)")
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    args = parser.parse_args(argv)
    raise_nofile()
    rates = [(50.0, 4.0), (500.0, 3.0)] if args.quick else [(50.0, 8.0), (500.0, 8.0)]
    reps = 1 if args.quick else 3
    workdir = Path(tempfile.mkdtemp(prefix="standby-journal-bench-"))
    with open("/proc/loadavg") as handle:
        loadavg = handle.read().split()[:3]
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")

    async def run() -> dict[str, Any]:
        with ProcessSet(workdir) as procs:
            urls = await start(procs, workdir)
            return await measure(urls, rates, reps)

    results = {
        "command": "python -m bench.journal_overhead " + " ".join(argv or sys.argv[1:]),
        "started": started,
        "loadavg": loadavg,
        "rates": asyncio.run(run()),
    }
    text = render(results)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))
        args.out.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
