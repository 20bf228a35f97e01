"""Does the journal keep up with streaming at saturation?  The write-ahead log's backlog.

    python -m bench.journal_backlog [--quick] [--seconds S] [--connections C] [--out NAME]

One journaling gateway (core 1) in front of two upstreams (core 0: the harness's Node
mock when ``node`` is installed, else ``standby sim``) that stream 20 content chunks
5 ms apart.  ``wrk`` (core 0) keeps ``C`` streams open at all times (closed loop, default
256) for ``S`` seconds (default 60): the gateway is saturated.  Meanwhile
``/standby/health`` is polled every 100 ms for the log's end and the position the
database has committed.  The backlog at a moment is

* in bytes: how much of the log the database has not applied (``lag_bytes``);
* in seconds: how long ago the log's end was where the database's cursor is now — the
  age of the oldest event not yet in the database.

Reported: streams/s, events/s committed, the backlog's median, p99 and maximum over the
run, and how long the database took to catch up after the load stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import journal_rig
from bench.client import STREAM_BODY
from bench.journal_rig import Gateway, position
from bench.processes import ProcessSet, raise_nofile
from bench.saturate import parse_wrk
from bench.stats import summarize

LUA = """\
-- written by bench/journal_backlog.py: POST one streamed chat completion per request
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench-client"
"""


async def run_wrk(url: str, connections: int, seconds: float, workdir: Path) -> dict[str, Any]:
    """Closed-loop streams with wrk (pinned to core 0); its summary."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed")
    script = workdir / "stream.lua"
    script.write_text(LUA.format(body=STREAM_BODY.decode()))
    argv = ["taskset", "-c", journal_rig.LOAD_CPUS, wrk, "-t1", f"-c{connections}"]
    argv += [f"-d{round(seconds)}s", "--latency", "--timeout", "10s", "-s", str(script), url]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(seconds + 30):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {(err or out).decode()}")
    return parse_wrk(out.decode())


class Backlog:
    """Samples of (time, log end, committed, lag bytes, events) and what they imply."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, tuple[int, int], tuple[int, int], int, int]] = []

    def add(self, at: float, status: dict[str, Any]) -> None:
        self.samples.append(
            (
                at,
                position(status.get("log_end")),
                position(status.get("committed")),
                int(status.get("lag_bytes") or 0),
                int(status.get("events") or 0),
            )
        )

    def seconds_behind(self) -> list[float]:
        """For each sample, how long ago the log's end was at the committed position."""
        times = [s[0] for s in self.samples]
        ends = [s[1] for s in self.samples]
        behind = []
        for at, _end, committed, lag, _events in self.samples:
            # the first sample whose log end had passed the committed position: the
            # oldest event not applied was appended after the sample before it (an
            # upper bound, to within one sampling interval)
            i = bisect.bisect_right(ends, committed)
            if not lag or i >= len(times):
                behind.append(0.0)
            else:
                behind.append(max(0.0, at - times[max(0, i - 1)]))
        return behind


async def sample(
    session: aiohttp.ClientSession, gateway: Gateway, backlog: Backlog, until: asyncio.Event
) -> None:
    while not until.is_set():
        status = await journal_rig.journal_status(session, gateway)
        backlog.add(time.perf_counter(), status)
        await asyncio.sleep(0.1)


async def measure(
    procs: ProcessSet, gateway: Gateway, workdir: Path, seconds: float, connections: int
) -> dict[str, Any]:
    backlog = Backlog()
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        sampler = asyncio.create_task(sample(session, gateway, backlog, stop))
        cpu_before = journal_rig.tree_cpu_seconds(gateway.pid)
        started = time.perf_counter()
        wrk = await run_wrk(gateway.chat_url, connections, seconds, workdir)
        load_end = time.perf_counter()
        cpu = journal_rig.tree_cpu_seconds(gateway.pid) - cpu_before
        caught_up = None
        for _ in range(1200):  # up to 60 s for the database to catch up
            status = await journal_rig.journal_status(session, gateway)
            if int(status.get("lag_bytes") or 0) == 0:
                caught_up = time.perf_counter() - load_end
                break
            await asyncio.sleep(0.05)
        stop.set()
        await sampler
    during = [s for s in backlog.samples if started <= s[0] <= load_end]
    behind = [
        b
        for s, b in zip(backlog.samples, backlog.seconds_behind(), strict=True)
        if started <= s[0] <= load_end
    ]
    lags = [float(s[3]) for s in during]
    events = (during[-1][4] - during[0][4]) / (during[-1][0] - during[0][0]) if during else 0.0
    return {
        "wrk": wrk,
        "streams_s": wrk["ok_rps"],
        "gateway_cpu_s": cpu,
        "cpu_us_per_stream": cpu / max(1, wrk["requests"]) * 1e6,
        "events_committed_s": events,
        "backlog_s": summarize(behind),
        "backlog_bytes": summarize(lags),
        "caught_up_after_s": caught_up,
        "samples": len(during),
    }


def render(results: dict[str, Any]) -> str:
    r = results["results"]
    seconds, bytes_ = r["backlog_s"], r["backlog_bytes"]
    caught = r["caught_up_after_s"]
    return "\n".join(
        [
            f"# Journal backlog under streaming saturation — {results['started']}",
            "",
            f"- command: `{results['command']}`",
            f"- load average at start {results['loadavg']}, at end {results['loadavg_end']}",
            f"- upstream: {results['upstream']} (20 chunks 5 ms apart); wrk, "
            f"{results['connections']} streams open, {results['seconds']:g} s; gateway on "
            "core 1, upstreams and wrk on core 0",
            "",
            "| | |",
            "|---|---:|",
            f"| streams/s (wrk, 2xx) | {r['streams_s']:,.0f} |",
            f"| non-2xx + socket errors | {r['wrk']['non_2xx'] + r['wrk']['socket_errors']} |",
            f"| CPU per stream, gateway + follower | {r['cpu_us_per_stream']:,.0f} µs |",
            f"| events committed/s | {r['events_committed_s']:,.0f} |",
            f"| backlog, seconds of events: median / p99 / max | {seconds['p50']:.2f} / "
            f"{seconds['p99']:.2f} / {seconds['max']:.2f} s |",
            f"| backlog, bytes: median / p99 / max | {bytes_['p50'] / 1e6:.2f} / "
            f"{bytes_['p99'] / 1e6:.2f} / {bytes_['max'] / 1e6:.2f} MB |",
            f"| caught up after the load stopped | "
            f"{'not within 60 s' if caught is None else f'{caught:.2f} s'} |",
            f"| samples (every 100 ms) | {r['samples']} |",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="10 s instead of 60")
    parser.add_argument("--seconds", type=float, help="seconds of load (default 60)")
    parser.add_argument("--connections", type=int, default=256, help="streams kept open")
    parser.add_argument("--upstream", choices=("node", "sim"), help="default: node if installed")
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    args = parser.parse_args(argv)
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    if seconds > 300 or not 1 <= args.connections <= 4000:
        parser.error("refusing an unbounded run")
    upstream = args.upstream or ("node" if shutil.which("node") else "sim")
    raise_nofile()
    workdir = Path(tempfile.mkdtemp(prefix="standby-journal-backlog-"))
    results: dict[str, Any] = {
        "command": "python -m bench.journal_backlog " + " ".join(argv or sys.argv[1:]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg": journal_rig.loadavg(),
        "upstream": upstream,
        "connections": args.connections,
        "seconds": seconds,
    }

    async def run() -> dict[str, Any]:
        with ProcessSet(workdir) as procs:
            bases = await journal_rig.start_upstreams(procs, upstream)
            gateway = journal_rig.make_gateway(workdir, "gateway", bases)
            await journal_rig.start(procs, gateway)
            await run_wrk(gateway.chat_url, 32, 2.0, workdir)  # warm-up, not recorded
            return await measure(procs, gateway, workdir, seconds, args.connections)

    try:
        results["results"] = asyncio.run(run())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # gateways' journals, logs
    journal_rig.record(results, args.out, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
