"""The floor under the added latency at a low rate: Standby beside featureless middles.

    python -m bench.hop_floor [--rounds 3] [--rate 50] [--duration 10] [--out PATH]

One Node mock upstream (the shared harness's ``mock_upstream.js``, streams of 20 chunks
5 ms apart, as the harness runs it) and, each pinned to core 1 as the harness pins a
gateway, four things that can sit between a client and it:

* ``haproxy``: HAProxy in HTTP mode with kept-alive upstream connections (when
  ``haproxy`` is on PATH): the cost of a compiled proxy in the middle;
* ``raw``: ``bench.floor_forwarders raw``: uvloop + httptools, parse and re-serialise the
  JSON, relay the answer byte for byte; no framework, no features;
* ``asgi``: ``bench.floor_forwarders asgi``: a bare ASGI function under uvicorn posting
  with aiohttp: the usual shape of a Python gateway, with no features;
* ``standby``: ``standby serve`` on the harness's plan (primary → backup), journal on.

The client (this process on uvloop, core 0, beside the mock, as in the harness) sends open-loop
requests at ``--rate`` per second for ``--duration`` seconds to the mock directly and
through each middle in turn, the order rotating each round: non-streaming chat
completions (latency) and streams (time to first token).  "Added" is a middle's p50 or
p99 minus the direct one of the same round; the report gives the median over rounds.

Why it exists: issue 8 asks for ≤ 0.7 ms added p50 at 50 req/s.  On hosts where whatever
was not touched for a few ms is slow to touch again (``bench.cold_costs``), that figure
is set by how much code and data a request touches; this shows where a gateway with no
features at all lands on the same machine, in the same minutes.

Bounded: each phase sends exactly ``rate x duration`` requests (≤ 2,000), at most 100 in
flight; every process started is stopped by its process group at the end.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import client
from bench.load import open_loop
from bench.machine import facts
from bench.processes import Proc, ProcessSet, free_port, wait_until
from bench.run import run_async
from bench.stack import ROOT, StackSpec, post_ok, start_stack, stop_stack
from bench.stats import diff, median

CHUNK_DELAY = 0.005  # between streamed chunks, as in the shared harness

HAPROXY_CFG = """\
# written by bench/hop_floor.py for one run
global
  maxconn 2000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  option http-no-delay  # forward each streamed chunk at once, not in buffered bursts
  http-reuse always
frontend front
  bind 127.0.0.1:{port}
  default_backend mock
backend mock
  server mock {upstream}
"""


async def start_middles(procs: ProcessSet, upstream_origin: str, cpus: str) -> dict[str, str]:
    """Start HAProxy (when installed) and the two floors; name → base URL."""
    middles: dict[str, str] = {}
    started: dict[str, Proc] = {}
    haproxy = shutil.which("haproxy")
    if haproxy is not None:
        port = free_port()
        cfg = procs.workdir / "haproxy.cfg"
        cfg.write_text(HAPROXY_CFG.format(port=port, upstream=upstream_origin.split("//")[1]))
        proc = procs.start("haproxy", [haproxy, "-db", "-f", str(cfg)], cpus=cpus)
        middles["haproxy"], started["haproxy"] = f"http://127.0.0.1:{port}/v1", proc
    for kind in ("raw", "asgi"):
        port = free_port()
        argv = [sys.executable, "-m", "bench.floor_forwarders", kind, "--port", str(port)]
        argv += ["--upstream", upstream_origin]
        proc = procs.start(kind, argv, cpus=cpus, cwd=ROOT)
        middles[kind], started[kind] = f"http://127.0.0.1:{port}/v1", proc
    for name, base in middles.items():
        url = f"{base}/chat/completions"
        await wait_until(functools.partial(post_ok, url), 20, name, started[name])
    return middles


async def phase(url: str, stream: bool, rate: float, duration: float) -> dict[str, Any]:
    """One open-loop phase against ``url``; its summary."""
    async with client.new_session(100, 30.0) as session:
        for _ in range(5):  # open and warm a connection first
            await (client.stream if stream else client.chat)(session, url, time.perf_counter())
        if stream:
            fire: Any = functools.partial(client.stream, session, url)
        else:
            fire = functools.partial(client.chat, session, url)
        run = await open_loop(fire, rate, duration, max_inflight=100)
    summary: dict[str, Any] = run.to_json()
    return summary


def _p(summary: dict[str, Any], key: str, q: str) -> float | None:
    value = (summary.get(key) or {}).get(q)
    return None if value is None else float(value)


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    results: dict[str, Any] = {"facts": facts(ROOT), "rounds": [], "settings": settings}
    with ProcessSet(workdir) as procs:
        stack = await start_stack(
            procs, StackSpec(upstream="node", chunk_delay=CHUNK_DELAY, gateway_cpus="1"), "hop"
        )
        origin = stack.direct.removesuffix("/v1")
        middles = await start_middles(procs, origin, "1")
        bases = {"direct": stack.direct, **middles}
        bases["standby"] = stack.gateway_url
        names = list(bases)
        for round_no in range(args.rounds):
            shift = round_no % len(names)
            order = names[shift:] + names[:shift]
            got: dict[str, Any] = {}
            for name in order:
                url = f"{bases[name]}/chat/completions"
                got[name] = {
                    "chat": await phase(url, False, args.rate, args.duration),
                    "stream": await phase(url, True, args.rate, args.duration),
                }
                chat, stream = got[name]["chat"], got[name]["stream"]
                print(
                    f"round {round_no + 1} {name:>8}: p50 {_p(chat, 'latency_ok_ms', 'p50'):.3f}"
                    f" p99 {_p(chat, 'latency_ok_ms', 'p99'):.3f}"
                    f" ttft p50 {_p(stream, 'ttft_ms', 'p50'):.3f} ms"
                    f"  outcomes {chat['outcomes']} {stream['outcomes']}",
                    flush=True,
                )
            results["rounds"].append({"order": order, "results": got})
        stop_stack(procs, stack)
    results["added"] = added(results["rounds"], [n for n in names if n != "direct"])
    return results


def added(rounds: list[dict[str, Any]], middles: list[str]) -> dict[str, dict[str, Any]]:
    """Per middle: added p50, p99 and TTFT p50 per round (ms) and their medians."""
    table: dict[str, dict[str, Any]] = {}
    for name in middles:
        per: dict[str, list[float | None]] = {"p50": [], "p99": [], "ttft_p50": []}
        for rnd in rounds:
            mine, direct = rnd["results"][name], rnd["results"]["direct"]
            for q in ("p50", "p99"):
                per[q].append(
                    diff(
                        _p(mine["chat"], "latency_ok_ms", q), _p(direct["chat"], "latency_ok_ms", q)
                    )
                )
            per["ttft_p50"].append(
                diff(_p(mine["stream"], "ttft_ms", "p50"), _p(direct["stream"], "ttft_ms", "p50"))
            )
        table[name] = {"rounds": per, "median": {q: median(v) for q, v in per.items()}}
    return table


def markdown(results: dict[str, Any]) -> str:
    f = results["facts"]
    lines = [
        f"# Added latency at {results['settings']['rate']:g} req/s: Standby beside "
        "featureless middles",
        "",
        f"git {f['git']}, Python {f['python']}, {f['nproc']} cores, load average at start "
        f"{f['loadavg_start']}; {results['settings']['rounds']} rounds of "
        f"{results['settings']['duration']:g} s per phase; middles on core 1, client and "
        "mock on core 0.",
        "",
        "| middle | added p50 | added p99 | added TTFT p50 | p50 by round | TTFT p50 by round |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name, row in results["added"].items():
        med = row["median"]
        lines.append(
            f"| {name} | {_ms(med['p50'])} | {_ms(med['p99'])} | {_ms(med['ttft_p50'])} "
            f"| {_by_round(row['rounds']['p50'])} | {_by_round(row['rounds']['ttft_p50'])} |"
        )
    direct = [rnd["results"]["direct"] for rnd in results["rounds"]]
    lines += [
        "",
        "Direct (client to mock), median of rounds: "
        f"p50 {_abs(direct, 'chat', 'latency_ok_ms', 'p50')}, "
        f"p99 {_abs(direct, 'chat', 'latency_ok_ms', 'p99')}, "
        f"TTFT p50 {_abs(direct, 'stream', 'ttft_ms', 'p50')}.",
    ]
    return "\n".join(lines) + "\n"


def _by_round(values: list[float | None]) -> str:
    return ", ".join("—" if v is None else f"{v:+.2f}" for v in values)


def _abs(runs: list[dict[str, Any]], kind: str, key: str, q: str) -> str:
    value = median([_p(run[kind], key, q) for run in runs])
    return "—" if value is None else f"{value:.2f} ms"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=50.0, help="requests a second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    parser.add_argument("--render", type=Path, help="print the table of a stored OUT.json")
    args = parser.parse_args(argv)
    if args.render is not None:
        print(markdown(json.loads(args.render.read_text())))
        return 0
    if not 1 <= args.rounds <= 10 or args.rate * args.duration > 2000:
        parser.error("--rounds must be 1..10 and rate x duration at most 2000")
    os.sched_setaffinity(0, {0})
    with tempfile.TemporaryDirectory(prefix="standby-hop-floor-") as scratch:
        results = run_async(measure(args, Path(scratch)))
    text = markdown(results)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
        args.out.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
