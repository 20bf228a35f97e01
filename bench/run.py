"""Standby's benchmark: direct-to-upstream vs through Standby, in one invocation.

    python -m bench.run [--quick] [--only latency,saturation,stream,memory]
                        [--upstream sim|node] [--out bench/results/NAME]

Phases (see ``bench/README.md``): added latency at 50 and 500 req/s (open loop),
saturation requests/s (closed loop, 32 connections), streaming time-to-first-token, and the
gateway's RSS with 1,000 open streams.  The gateway is pinned to core 1; upstreams, this
load generator and wrk to core 0.  Every process started is stopped by its process group,
also on Ctrl-C, SIGTERM and errors.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn

from bench import machine, phases, report
from bench.client import new_session
from bench.processes import ProcessSet, raise_nofile
from bench.settings import PHASES, Settings
from bench.stack import ROOT, StackSpec, start_stack, stop_stack

PACKAGE = ROOT / "standby"

UPSTREAMS = {
    "sim": "standby sim (Python, aiohttp)",
    "node": "../shared/harness/mock_upstream.js (Node)",
}


def log(message: str) -> None:
    """A progress line on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="short phases (~1 min in all)")
    parser.add_argument(
        "--only", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}"
    )
    parser.add_argument(
        "--upstream",
        choices=("sim", "node"),
        default="sim",
        help="mock upstream: standby sim (default) or the harness's Node mock",
    )
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    parser.add_argument("--reps", type=int, help="direct/standby pairs per measurement")
    parser.add_argument(
        "--engine",
        choices=("auto", "wrk", "aiohttp"),
        default="auto",
        help="saturation client (auto: wrk when installed)",
    )
    parser.add_argument("--gateway-cpus", default="1", help="taskset list for the gateway")
    parser.add_argument(
        "--load-cpus", default="0", help="taskset list for upstreams, load generator and wrk"
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="measure nothing: print the table of a results .json and rewrite the .md next to it",
    )
    args = parser.parse_args(argv)
    chosen = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(chosen) - set(PHASES))
    if unknown or not chosen:
        parser.error(f"--only: unknown phase(s) {unknown}; choose from {','.join(PHASES)}")
    args.only = chosen
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    """Phase sizes from the command line."""
    overrides: dict[str, object] = {
        "upstream": args.upstream,
        "engine": args.engine,
        "gateway_cpus": args.gateway_cpus,
        "load_cpus": args.load_cpus,
    }
    if args.reps is not None:
        overrides["reps"] = max(1, args.reps)
    return Settings.quick(**overrides) if args.quick else Settings(**overrides)  # type: ignore[arg-type]


def pin_self(cpus: str) -> None:
    """Pin this process (the load generator) to ``cpus`` (e.g. ``0`` or ``0,2-3``)."""
    chosen: set[int] = set()
    for part in cpus.split(","):
        low, _, high = part.partition("-")
        chosen.update(range(int(low), int(high or low) + 1))
    os.sched_setaffinity(0, chosen)


async def measure(
    s: Settings,
    only: list[str],
    procs: ProcessSet,
    sources: dict[str, str],
    watch: machine.CpuWatch,
) -> dict[str, Any]:
    """Run the chosen phases (``watch`` samples everyone's CPU meanwhile)."""
    sampler = asyncio.create_task(watch.run())
    try:
        return await _phases(s, only, procs, sources)
    finally:
        sampler.cancel()


async def _phases(
    s: Settings, only: list[str], procs: ProcessSet, sources: dict[str, str]
) -> dict[str, Any]:
    """Run the chosen phases; returns phase name → results.

    ``sources`` gets the digest of the gateway's source as each test bed starts.
    """
    results: dict[str, Any] = {}
    fast = [p for p in ("latency", "saturation", "stream") if p in only]
    if fast:
        log(
            f"starting {s.upstream} upstreams and the gateway (stream chunk delay "
            f"{s.stream_chunk_delay * 1000:g} ms)"
        )
        sources["fast"] = machine.source_digest(PACKAGE)
        stack = await start_stack(
            procs, StackSpec(s.upstream, s.stream_chunk_delay, s.gateway_cpus, s.load_cpus), "fast"
        )
        async with new_session(1000, s.timeout) as session:
            log("warm-up (not recorded)")
            await phases.warm_up(stack, s, session)
            if "latency" in fast:
                log(f"latency: open loop at {[r for r, _ in s.rates]} req/s, {s.reps} pair(s)")
                results["latency"] = await phases.latency(stack, s, session)
            if "saturation" in fast:
                log(
                    f"saturation: {s.sat_connections} connections, {s.sat_duration:g} s x "
                    f"{s.reps} pair(s)"
                )
                results["saturation"] = await phases.saturation(stack, s)
            if "stream" in fast:
                log(
                    f"stream: {s.stream_rate:g} streams/s for {s.stream_duration:g} s x "
                    f"{s.reps} pair(s)"
                )
                expected = await phases.reference_text(session, stack)
                results["stream"] = await phases.streaming(stack, s, session, expected)
        stop_stack(procs, stack)
    if "memory" in only:
        log(
            f"memory: fresh gateway, {s.memory_streams} streams of 20 chunks "
            f"{s.memory_chunk_delay:g} s apart, direct then standby"
        )
        sources["slow"] = machine.source_digest(PACKAGE)
        stack = await start_stack(
            procs, StackSpec(s.upstream, s.memory_chunk_delay, s.gateway_cpus, s.load_cpus), "slow"
        )
        results["memory"] = await phases.memory(stack, s)
        stop_stack(procs, stack)
    return results


def gateway_files(workdir: Path) -> dict[str, int]:
    """Files the gateways left in the scratch dir (a journal, say): name → bytes.

    They are deleted once measured (a full run's journal is ~200 MB); the plans, logs
    and results stay in the scratch dir.
    """
    found: dict[str, int] = {}
    ours = {".log", ".yaml", ".lua", ".json", ".md"}
    for path in sorted(workdir.rglob("*")):
        if path.is_file() and path.suffix not in ours:
            found[str(path.relative_to(workdir))] = path.stat().st_size
            path.unlink()
    for path in sorted(workdir.rglob("*"), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return found


def notes(results: dict[str, Any]) -> list[str]:
    """Warnings about the run's validity."""
    out: list[str] = []
    if len(set(results["source_digests"].values())) > 1:
        out.append(
            f"the gateway's source changed during the run "
            f"({results['source_digests']}): phases may have run different code"
        )
    if results["machine"]["loadavg_start"][0] > 0.5:
        out.append(
            f"load average was {results['machine']['loadavg_start'][0]} at start: "
            "the machine was busy, expect noise"
        )
    sat = results["phases"].get("saturation")
    if sat and sat["gateway_cpu_pct"] < 85:
        out.append(
            f"the gateway used only {sat['gateway_cpu_pct']:.0f} % of its core at "
            "saturation: the upstream or the load generator may be the bottleneck"
        )
    for rate, block in results["phases"].get("latency", {}).items():
        lag = max(
            p[side]["send_lag_ms"]["p99"] or 0 for p in block["pairs"] for side in phases.SIDES
        )
        if lag > 5:
            out.append(
                f"at {rate} req/s the generator sent up to {lag:.1f} ms late (p99); "
                "that lateness is counted in the latency (open loop)"
            )
    return out


def _terminate(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")


async def _interruptible(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run ``coro``; SIGINT/SIGTERM cancel it (cleanly) and become ``KeyboardInterrupt``."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coro)
    received: list[int] = []

    def stop(signum: int) -> None:
        received.append(signum)
        task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop, signum)
    try:
        return await task
    except asyncio.CancelledError:
        if received:
            raise KeyboardInterrupt(f"signal {received[0]}") from None
        raise
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        signal.signal(signal.SIGTERM, _terminate)


def run_async(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run ``coro`` on uvloop (as the harness's client does); SIGINT/SIGTERM stop it cleanly."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_interruptible(coro))
    return uvloop.run(_interruptible(coro))


def render(path: Path) -> int:
    """Re-render a stored run (after a change to the report's format)."""
    results = json.loads(path.read_text())
    report.print_table(report.rows(results), f"Standby vs direct ({results['upstream']})")
    json_path, md_path = report.write(results, path.with_suffix(""))
    log(f"wrote {md_path} (and {json_path}, unchanged content)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    if args.render is not None:
        return render(args.render)
    s = settings_from(args)
    pin_self(s.load_cpus)
    raise_nofile()
    signal.signal(signal.SIGTERM, _terminate)
    workdir = Path(tempfile.mkdtemp(prefix="standby-bench-"))
    command = "python -m bench.run " + shlex.join(sys.argv[1:] if argv is None else argv)
    started, t0 = time.strftime("%Y-%m-%d %H:%M:%S %Z"), time.monotonic()
    facts = machine.facts(ROOT)
    log(f"{command}  (scratch: {workdir}; load average {facts['loadavg_start']})")
    watch = machine.CpuWatch()
    sources: dict[str, str] = {}
    try:
        with ProcessSet(workdir) as procs:
            measured = run_async(measure(s, args.only, procs, sources, watch))
    except KeyboardInterrupt:
        log("interrupted: every started process was stopped")
        return 130
    results: dict[str, Any] = {
        "command": command,
        "started": started,
        "elapsed_s": time.monotonic() - t0,
        "upstream": UPSTREAMS[s.upstream],
        "settings": dataclasses.asdict(s),
        "machine": facts,
        "loadavg_end": machine.loadavg(),
        "foreign_cpu": watch.foreign(procs.started | {os.getpgrp()}),
        "phases": measured,
        "gateway_files": gateway_files(workdir),
        "source_digests": sources | {"end": machine.source_digest(PACKAGE)},
    }
    results["notes"] = notes(results)
    report.print_table(report.rows(results), f"Standby vs direct ({results['upstream']})")
    for note in results["notes"]:
        log(f"note: {note}")
    out = args.out or workdir / "results"
    paths = report.write(results, out)
    log(f"wrote {paths[0]} and {paths[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
