"""Thousands of concurrent streams through one real gateway: do they all complete, does
any breaker open, and how much memory does the gateway hold?

```bash
.venv/bin/python -m bench.concurrency --streams 3000
.venv/bin/python -m bench.concurrency --streams 10000
.venv/bin/python -m bench.concurrency --streams 3000 --pool 1000   # pools smaller than the load
```

What runs: two ``standby sim`` processes (``primary``, ``backup``) that stream ``--words``
content chunks ``--chunk-delay`` seconds apart (by default 20, 1.5 s apart, or N/2000 s
for N > 3,000 streams, so every stream is open at some moment: 30 s, 100 s at 10,000),
and one ``standby serve`` with a default-like plan: both providers
with the plan's default pool (``max_connections``, unless ``--pool``), one route
``gpt-4o-mini`` → primary, then backup, default deadlines, the journal on (SQLite in the
scratch directory).  The gateway runs on ``--gateway-cpus``, the sims and the clients on
``--load-cpus``.

The load: ``--streams`` streaming requests from raw aiohttp clients, started evenly over
``--ramp`` seconds (default: 1,000 a second), spread over ``--clients`` processes so no
client runs into its own open-files limit (each raises its soft limit to the hard one).
Every stream is checked: HTTP 200, the sim's whole text, ``[DONE]``.  Meanwhile the
gateway's ``VmRSS`` and open descriptors are sampled every 0.5 s and
``/standby/health`` every 2 s.

Verdict: every stream completed and no breaker opened (state closed, ``opened_count`` 0
on every target); at 10,000 streams or more also ``VmHWM`` under 600 MB.  One gateway
needs two descriptors per stream (the client's and the upstream's): ``ulimit -Hn`` says
how many streams this machine can hold at all, and the run says so up front.

Bounded: streams time out after their expected length + 60 s; clients are stopped at
ramp + that + 30 s; every process is started in its own session and stopped by its PID.
Scratch goes to ``/tmp/standby-concurrency-*`` (deleted unless ``--keep``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.processes import (
    Proc,
    ProcessSet,
    cpu_seconds,
    free_port,
    hwm_kib,
    raise_nofile,
    rss_kib,
    wait_until,
)
from standby.sim.answers import canned_text

ROOT = Path(__file__).resolve().parent.parent
MODEL = "gpt-4o-mini"
RESERVED_FILES = 256  # what the gateway keeps for everything else (web/limits.py)
RSS_LIMIT_MIB = 600
PLAN = """\
# written by bench/concurrency.py: a default-like plan (default deadlines, breakers, journal)
providers:
  primary: {{kind: openai-compatible, base_url: "{primary}", api_key: "sk-bench"{pool}}}
  backup:  {{kind: openai-compatible, base_url: "{backup}", api_key: "sk-bench"{pool}}}
routes:
  {model}: {{targets: ["primary/{model}", "backup/{model}"]}}
{journal}"""
BODY = orjson.dumps(
    {
        "model": MODEL,
        "stream": True,
        "messages": [{"role": "user", "content": "Say something reassuring."}],
    }
)
HEADERS = {"content-type": "application/json"}


# -- one client process ------------------------------------------------------------------


async def one_stream(session: aiohttp.ClientSession, url: str, expected: str) -> dict[str, Any]:
    """One streamed chat completion read to its end; wall-clock times."""
    began = time.time()
    got: dict[str, Any] = {"start": began}
    try:
        async with session.post(url, data=BODY, headers=HEADERS) as resp:
            got["provider"] = resp.headers.get("x-standby-provider", "")
            if resp.status != 200:
                raw = await resp.read()
                got["outcome"] = f"http_{resp.status}"
                got["code"] = _error_code(raw)
                return got
            text: list[str] = []
            done = False
            async for line in resp.content:
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    done = True
                    continue
                event = orjson.loads(payload)
                if "error" in event:
                    got["code"] = str(event["error"].get("code"))
                    continue
                for choice in event.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        got.setdefault("first", time.time())
                        text.append(content)
            whole = "".join(text)
            if "code" in got:
                got["outcome"] = "error_event"
            elif not done:
                got["outcome"] = "no_done"
            else:
                got["outcome"] = "ok" if whole == expected else "content_mismatch"
    except TimeoutError:
        got["outcome"] = "timeout"
    except (aiohttp.ClientError, OSError, orjson.JSONDecodeError) as exc:
        got["outcome"] = f"error:{type(exc).__name__}"
    finally:
        got["end"] = time.time()
    return got


def _error_code(raw: bytes) -> str:
    try:
        body = orjson.loads(raw)
        return str(body["error"]["code"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return raw[:40].decode(errors="replace") or "-"  # uvicorn's own 503 is plain text


async def client(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Start this process's share of the streams on schedule; wait for all (bounded)."""
    expected = canned_text(spec["words"])
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=spec["stream_timeout"])
    results: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = []
        for at in spec["schedule"]:
            delay = at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one_stream(session, spec["url"], expected)))
        done, pending = await asyncio.wait(tasks, timeout=spec["stream_timeout"] + 5)
        for task in pending:
            task.cancel()
        results = [task.result() for task in done]
        results += [{"outcome": "unfinished", "start": 0.0, "end": 0.0}] * len(pending)
    return results


def run_client(spec_path: Path) -> None:
    """The ``--client`` entry point: read the spec, write the results beside it."""
    raise_nofile()
    spec = json.loads(spec_path.read_text())
    results = asyncio.run(client(spec))
    spec_path.with_suffix(".out.json").write_bytes(orjson.dumps(results))


# -- the run -----------------------------------------------------------------------------


def capacity(hard: int) -> int:
    """Streams one gateway can hold under an open-files hard limit of ``hard``."""
    if hard == resource.RLIM_INFINITY:
        return 1 << 30
    return (hard - RESERVED_FILES) // 2


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return bool(resp.status == 200)


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def opened_breakers(health: dict[str, Any]) -> dict[str, Any]:
    """Targets whose breaker is not closed or opened at some point."""
    return {
        key: {"state": t.get("state"), "opened_count": t.get("opened_count")}
        for key, t in health.get("targets", {}).items()
        if t.get("state") != "closed" or t.get("opened_count", 0)
    }


async def sample(
    gateway: Proc, stop: asyncio.Event, into: list[tuple[float, int, int]], started: float
) -> None:
    """Sample the gateway's RSS and open descriptors every 0.5 s until ``stop``."""
    while not stop.is_set():
        with contextlib.suppress(OSError, RuntimeError):
            into.append((time.time() - started, rss_kib(gateway.pid), _fds(gateway.pid)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def watch_breakers(root: str, stop: asyncio.Event, into: dict[str, Any]) -> None:
    """Read ``/standby/health`` every 2 s until ``stop``; keep every breaker seen open."""
    while not stop.is_set():
        with contextlib.suppress(OSError, ValueError):
            health = await asyncio.to_thread(_get_json, f"{root}/standby/health")
            into.update(opened_breakers(health))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 2.0)


def attempts_by_outcome(metrics: str) -> dict[str, int]:
    """``target outcome`` → attempts, from the gateway's Prometheus text."""
    found: dict[str, int] = {}
    for line in metrics.splitlines():
        if line.startswith("standby_attempts_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            key = f"{labels.get('target', '?')} {labels.get('outcome', '?')}"
            found[key] = found.get(key, 0) + int(float(line.rsplit(" ", 1)[1]))
    return found


def _get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode())


def peak_open(results: list[dict[str, Any]]) -> int:
    """The most streams that completed that were open at one moment (sent, not yet ended)."""
    edges = []
    for r in results:
        if r["outcome"] == "ok":
            edges += [(r["start"], 1), (r["end"], -1)]
    best = now = 0
    for _, step in sorted(edges):
        now += step
        best = max(best, now)
    return best


async def run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    fits = capacity(hard)
    report: dict[str, Any] = {
        "streams": args.streams,
        "clients": args.clients,
        "ramp_s": args.ramp,
        "words": args.words,
        "chunk_delay_s": args.chunk_delay,
        "pool": args.pool or "plan default",
        "journal": not args.no_journal,
        "nofile_hard": hard,
        "streams_that_fit": fits,
    }
    if args.streams > fits:
        print(
            f"note: the open-files hard limit ({hard}) lets one gateway hold about {fits} "
            f"streams (a client and an upstream descriptor each, {RESERVED_FILES} kept); "
            f"{args.streams} asked: expect the rest to be refused with a 503",
            flush=True,
        )
    cpus = (
        {"gateway": None, "load": None}
        if args.no_pin
        else {
            "gateway": args.gateway_cpus,
            "load": args.load_cpus,
        }
    )
    with ProcessSet(scratch) as procs:
        ports = {name: free_port() for name in ("primary", "backup", "gateway")}
        bases = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        sims: dict[str, Proc] = {}
        for name in ("primary", "backup"):
            argv = [sys.executable, "-m", "standby.cli", "sim", "--host", "127.0.0.1"]
            argv += ["--port", str(ports[name]), "--name", name, "--words", str(args.words)]
            argv += ["--chunk-delay", str(args.chunk_delay)]
            sims[name] = procs.start(name, argv, cpus=cpus["load"])
        for name, proc in sims.items():
            ready = functools.partial(_ok, f"{bases[name]}/health")
            await wait_until(ready, 30, f"sim {name}", proc)
        plan = scratch / "plan.yaml"
        plan.write_text(
            PLAN.format(
                primary=bases["primary"] + "/v1",
                backup=bases["backup"] + "/v1",
                model=MODEL,
                pool=f", max_connections: {args.pool}" if args.pool else "",
                journal="journal: {enabled: false}\n" if args.no_journal else "",
            )
        )
        argv = [sys.executable, "-m", "standby.cli", "serve", "--plan", str(plan)]
        argv += ["--host", "127.0.0.1", "--port", str(ports["gateway"])]
        gateway = procs.start("gateway", argv, cpus=cpus["gateway"])
        root = bases["gateway"]
        await wait_until(lambda: _ok(f"{root}/healthz"), 60, "the gateway", gateway)
        await asyncio.sleep(1.0)
        report["rss_idle_kib"] = rss_kib(gateway.pid)
        cap = re.search(r"serving at most (\d+)", gateway.log.read_text(errors="replace"))
        report["gateway_client_cap"] = int(cap.group(1)) if cap else None
        if cap:
            print(f"note: the gateway caps its client connections at {cap.group(1)}", flush=True)

        stream_s = args.words * args.chunk_delay
        stream_timeout = stream_s + 60.0
        start_at = time.time() + 2.0
        schedule = [start_at + i * args.ramp / args.streams for i in range(args.streams)]
        clients = []
        for k in range(args.clients):
            spec_path = scratch / f"client-{k}.json"
            spec = {
                "url": f"{root}/v1/chat/completions",
                "words": args.words,
                "stream_timeout": stream_timeout,
                "schedule": schedule[k :: args.clients],
            }
            spec_path.write_text(json.dumps(spec))
            argv = [sys.executable, "-m", "bench.concurrency", "--client", str(spec_path)]
            proc = procs.start(f"client-{k}", argv, cpus=cpus["load"], cwd=ROOT)
            clients.append((proc, spec_path))

        stop = asyncio.Event()
        samples: list[tuple[float, int, int]] = []
        breakers_seen: dict[str, Any] = {}
        watchers = [
            asyncio.create_task(sample(gateway, stop, samples, start_at)),
            asyncio.create_task(watch_breakers(root, stop, breakers_seen)),
        ]
        cpu_before = cpu_seconds(gateway.pid)
        deadline = time.monotonic() + 2.0 + args.ramp + stream_timeout + 30.0
        results: list[dict[str, Any]] = []
        for proc, spec_path in clients:
            left = max(1.0, deadline - time.monotonic())
            try:
                await asyncio.to_thread(proc.popen.wait, timeout=left)
            except subprocess.TimeoutExpired:
                procs.stop(proc)
            out = spec_path.with_suffix(".out.json")
            if out.exists():
                results += orjson.loads(out.read_bytes())
            else:
                print(f"client {proc.name} left no results:\n{proc.log_tail()}", flush=True)
        report["gateway_cpu_s"] = round(cpu_seconds(gateway.pid) - cpu_before, 1)
        await asyncio.sleep(1.0)  # let the gateway drop what finished before "after"
        stop.set()
        await asyncio.gather(*watchers)
        health = await asyncio.to_thread(_get_json, f"{root}/standby/health")
        metrics = await asyncio.to_thread(_get_text, f"{root}/metrics")
        report["attempts"] = attempts_by_outcome(metrics)
        log_lines = gateway.log.read_text(errors="replace").splitlines()
        report["gateway_warnings"] = [line for line in log_lines if " WARNING " in line][-10:]
        report["rss_after_kib"] = rss_kib(gateway.pid)
        report["vm_hwm_kib"] = hwm_kib(gateway.pid)
        report["journal_wal_bytes"] = await asyncio.to_thread(_wal_bytes, scratch)

    outcomes: dict[str, int] = {}
    codes: dict[str, int] = {}
    served: dict[str, int] = {}
    for r in results:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
        if "code" in r:
            codes[r["code"]] = codes.get(r["code"], 0) + 1
        if r["outcome"] == "ok":
            served[r.get("provider", "")] = served.get(r.get("provider", ""), 0) + 1
    most = peak_open(results)
    at_peak = max((s[1] for s in samples), default=0)
    report.update(
        completed_ok=outcomes.get("ok", 0),
        outcomes=dict(sorted(outcomes.items())),
        error_codes=dict(sorted(codes.items())),
        served_by=served,
        peak_open=most,
        rss_peak_sampled_kib=at_peak,
        fds_peak=max((s[2] for s in samples), default=0),
        kib_per_stream=round((at_peak - report["rss_idle_kib"]) / most, 1) if most else None,
        breakers_seen=breakers_seen,
        breakers_at_end=opened_breakers(health),
        targets_at_end={k: v.get("state") for k, v in health.get("targets", {}).items()},
        ttft_s_p50=_median([r["first"] - r["start"] for r in results if "first" in r]),
        timeline=[[round(t, 1), kib, fds] for t, kib, fds in samples[::4]],
    )
    checks = {
        "all streams completed": report["completed_ok"] == args.streams,
        "no breaker opened": not report["breakers_seen"] and not report["breakers_at_end"],
    }
    if args.streams >= 10_000:
        checks[f"VmHWM under {RSS_LIMIT_MIB} MB"] = (
            report["vm_hwm_kib"] * 1024 < RSS_LIMIT_MIB * 1e6
        )
    report["checks"] = checks
    report["pass"] = all(checks.values())
    return report


def _wal_bytes(scratch: Path) -> int:
    """Bytes in the gateway's write-ahead log (the journal's, in the scratch directory)."""
    return sum(
        f.stat().st_size
        for f in scratch.rglob("*")
        if f.is_file() and "wal" in str(f.relative_to(scratch))
    )


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[len(ordered) // 2], 3)


def show(report: dict[str, Any]) -> None:
    mib = 1 / 1024
    print(
        f"\n{report['streams']} streams ({report['clients']} client processes, ramp "
        f"{report['ramp_s']:g} s, each {report['words']} chunks {report['chunk_delay_s']:g} s "
        f"apart), pools: {report['pool']}, journal {'on' if report['journal'] else 'off'}, "
        f"ulimit -Hn {report['nofile_hard']} (fits ~{report['streams_that_fit']} streams)"
    )
    print(f"  completed ok       {report['completed_ok']} / {report['streams']}")
    print(f"  outcomes           {report['outcomes']}  error codes {report['error_codes']}")
    print(f"  served by          {report['served_by']}")
    print(
        f"  peak open at once  {report['peak_open']} completed streams "
        f"(gateway fds peak {report['fds_peak']})"
    )
    print(f"  TTFT p50           {report['ttft_s_p50']} s")
    print(f"  attempts           {report['attempts']}")
    print(
        f"  breakers           seen open: {report['breakers_seen'] or 'none'}; "
        f"at end: {report['targets_at_end']}"
    )
    print(
        f"  gateway RSS        idle {report['rss_idle_kib'] * mib:.0f} MiB, peak sampled "
        f"{report['rss_peak_sampled_kib'] * mib:.0f} MiB (~{report['kib_per_stream']} KiB per "
        f"open stream), VmHWM {report['vm_hwm_kib'] * mib:.0f} MiB, after "
        f"{report['rss_after_kib'] * mib:.0f} MiB; CPU {report['gateway_cpu_s']} s"
    )
    for line in report["gateway_warnings"]:
        print(f"  gateway said       {line[:160]}")
    for name, ok in report["checks"].items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.concurrency", description=__doc__)
    parser.add_argument("--streams", type=int, default=3000)
    parser.add_argument("--ramp", type=float, help="seconds to start them all (default N/1000)")
    parser.add_argument("--clients", type=int, help="client processes (default: 1 per 5,000)")
    parser.add_argument("--words", type=int, default=20, help="content chunks per stream")
    parser.add_argument(
        "--chunk-delay", type=float, help="seconds between chunks (default: N/2000, at least 1.5)"
    )
    parser.add_argument("--pool", type=int, help="providers' max_connections (default: plan's)")
    parser.add_argument("--no-journal", action="store_true")
    parser.add_argument("--gateway-cpus", default="1")
    parser.add_argument("--load-cpus", default="0")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--client", type=Path, help=argparse.SUPPRESS)  # a client process
    args = parser.parse_args()
    if args.client is not None:
        run_client(args.client)
        return
    if not 1 <= args.streams <= 50_000:
        parser.error("--streams must be within 1..50000")
    args.ramp = args.ramp if args.ramp is not None else max(2.0, args.streams / 1000)
    if args.chunk_delay is None:  # long enough that every stream is open at some moment
        args.chunk_delay = max(1.5, args.streams / 2000)
    if args.ramp + 10 > args.words * args.chunk_delay:
        parser.error("streams must last longer than the ramp + 10 s (--words times --chunk-delay)")
    args.clients = args.clients or math.ceil(args.streams / 5000)
    raise_nofile()
    scratch = Path(tempfile.mkdtemp(prefix="standby-concurrency-"))
    try:
        report = asyncio.run(run(args, scratch))
    finally:
        if args.keep:
            print(f"scratch kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    show(report)
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=1))
    sys.exit(0 if report["pass"] else 1)


if __name__ == "__main__":
    main()
