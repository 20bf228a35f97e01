"""Two versions of Standby side by side, at saturation, in turns: did a change cost speed?

Each version is a source tree (a ``git worktree`` of a commit, or this checkout) run as
``python -m standby.cli serve`` with that tree first on ``PYTHONPATH``, so both use this
venv's libraries and differ only in Standby's own code.  Both gateways serve the same plan
(journal on, as shipped) in front of one ``standby sim``; each is pinned to core 1 and
measured alone, ``--duration`` s of wrk (``-t1 -c32``, non-streaming chat completions) per
turn, the order alternating every repetition.  Reported per version: 2xx req/s and gateway
CPU µs per request (medians), and B's ratio to A.  CPU per request is the steadier figure
on a shared machine: it does not depend on how much of the core the gateway was given.

    git worktree add /tmp/standby-before <commit>
    .venv/bin/python -m bench.versions --a /tmp/standby-before --b . --reps 8
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from bench.processes import Proc, ProcessSet, cpu_seconds, free_port, wait_until
from bench.saturate import run_wrk
from bench.stack import CHAT_BODY, MODEL, StackSpec, upstream_argv

PLAN = """providers:
  primary: {{kind: openai-compatible, base_url: "{upstream}"}}
timeouts: {{connect: 5s, first_token: 5s, idle: 5s, total: 60s}}
routes:
  {model}: {{targets: [primary/{model}]}}
"""


def _post_ok(url: str) -> bool:
    request = urllib.request.Request(
        url, data=CHAT_BODY, method="POST", headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return bool(resp.status == 200)


def _get_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return bool(resp.status == 200)


async def start(procs: ProcessSet, name: str, tree: Path, upstream: str) -> tuple[Proc, str]:
    """The version in ``tree``, with its own plan directory (its own journal), answering."""
    directory = procs.workdir / name
    directory.mkdir()
    plan = directory / "plan.yaml"
    plan.write_text(PLAN.format(upstream=upstream, model=MODEL))
    port = free_port()
    argv = [
        "env",
        f"PYTHONPATH={tree}",  # resolved by main()
        sys.executable,
        "-m",
        "standby.cli",
        "serve",
        "--plan",
        str(plan),
        "--port",
        str(port),
    ]
    gateway = procs.start(name, argv, cpus="1", cwd=directory)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    await wait_until(lambda: _post_ok(url), 30, f"version {name}", gateway)
    await run_wrk(url, 32, 2, procs.workdir)  # warm-up, not recorded
    return gateway, url


async def measure(procs: ProcessSet, gateway: Proc, url: str, duration: float) -> dict[str, float]:
    cpu_before = cpu_seconds(gateway.pid)
    result = await run_wrk(url, 32, duration, procs.workdir)
    cpu = cpu_seconds(gateway.pid) - cpu_before
    if result["non_2xx"] + result["socket_errors"]:
        raise RuntimeError(f"{gateway.name}: failed requests\n{gateway.log_tail()}")
    return {"rps": result["ok_rps"], "cpu_us": cpu / result["requests"] * 1e6}


async def run(a: Path, b: Path, reps: int, duration: float) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory(prefix="standby-versions-") as scratch:
        with ProcessSet(Path(scratch)) as procs:
            port = free_port()
            sim = procs.start("sim", upstream_argv(StackSpec("sim", 0.0), "primary", port), "0")
            upstream = f"http://127.0.0.1:{port}/v1"
            await wait_until(lambda: _get_ok(f"{upstream}/models"), 20, "the sim", sim)
            gateways = {"A": await start(procs, "A", a, upstream)}
            gateways["B"] = await start(procs, "B", b, upstream)
            for rep in range(reps):
                for name in ("A", "B") if rep % 2 == 0 else ("B", "A"):
                    figures = await measure(procs, *gateways[name], duration)
                    results[name].append(figures)
                    print(
                        f"rep {rep + 1} {name} {figures['rps']:8.0f} req/s "
                        f"{figures['cpu_us']:6.1f} µs CPU/req",
                        flush=True,
                    )
    return results


def report(results: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    med = {
        name: {key: statistics.median(run[key] for run in runs) for key in ("rps", "cpu_us")}
        for name, runs in results.items()
    }
    pairs = list(zip(results["A"], results["B"], strict=True))
    summary = {
        "A": med["A"],
        "B": med["B"],
        "rps_ratio_b_over_a": statistics.median(b["rps"] / a["rps"] for a, b in pairs),
        "cpu_ratio_b_over_a": statistics.median(b["cpu_us"] / a["cpu_us"] for a, b in pairs),
    }
    print(
        f"A {med['A']['rps']:.0f} req/s {med['A']['cpu_us']:.1f} µs/req | "
        f"B {med['B']['rps']:.0f} req/s {med['B']['cpu_us']:.1f} µs/req | "
        f"B/A req/s {summary['rps_ratio_b_over_a']:.3f}, "
        f"CPU per request {summary['cpu_ratio_b_over_a']:.3f} (medians of per-rep ratios)"
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, required=True, help="the baseline source tree")
    parser.add_argument("--b", type=Path, required=True, help="the changed source tree")
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args(argv)
    report(asyncio.run(run(args.a.resolve(), args.b.resolve(), args.reps, args.duration)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
