"""uvicorn + Standby's limit layer vs granian: what each bounds, and what each serves.

Two parts, one invocation (``--only probes`` / ``--only throughput`` for one of them):

**probes** — each server in front of a *slow* ``standby sim`` (streams of 20 words 0.5 s
apart), configured with short bounds so a probe ends quickly:

* ``uvicorn+limits``: ``standby.web.serve.run_server`` as shipped (``web/limits.py``), plan
  ``server: {max_header: 64KiB, header_timeout: 2s, body_timeout: 3s, max_connections: 8}``,
  and uvicorn's keep-alive timeout lowered from 75 s to 4 s for the probe only (the module
  constant ``serve.KEEP_ALIVE`` is set in this process; no file is changed);
* ``uvicorn-plain``: uvicorn's own httptools protocol (the server before ``web/limits.py``),
  for reference;
* ``granian``: ``granian --interface asgi`` serving the same ``AccessLog(StandbyApp)``, with
  every bound it has an option for: ``--http1-buffer-size 65536``,
  ``--http1-header-read-timeout 2000``, ``--backpressure 8``;
* ``granian-defaults``: the same without those options (buffer 417,792 B, head timeout
  30 s, backpressure = backlog).

What is sent: a 100 MB header (``GET /v1/models``, one ``X-Big`` header, 64 KiB writes;
status, MiB written before the server reset the connection, RSS growth of the serving
process; the status of a refused head is often lost to the reset, so an 80 KiB head sent
in one write and then only read shows it); a connection that sends
nothing, half a head, a head trickled one line per 0.5 s, a body shorter than its
``Content-Length``, a body trickled one byte per 0.5 s, and an idle kept-alive connection
after one answer (time until the server closes, status if any, waiting at most
``--probe-wait`` s); and a 9th connection while 8 streams, then 8 idle kept-alive
connections, hold the cap of 8.

**throughput** — a *fast* sim (non-streaming answers at once, streams of 20 words with no
delay) on core 0 with ``wrk -t1``, and both gateways pinned to core 1, up at once, journal
off (the HTTP layer is what differs): ``uvicorn+limits`` is ``run_server`` exactly as
shipped; ``granian`` is one worker, ``--loop uvloop`` (what uvicorn's ``loop="auto"``
picks), ``--http 1``, with the equivalent bounds (64 KiB buffer, 10 s head timeout,
backpressure 20,000) and the same gc tuning as ``run_server``.  Measured in turns
(uvicorn, granian, then granian, uvicorn, …), ``--duration`` s of ``wrk -c64`` each,
non-streaming, then streaming.  Reported per round: 2xx req/s, wrk's p50/p99, gateway CPU
µs per request; then medians and the median of the per-round ratios granian/uvicorn.

    .venv/bin/python -m bench.server_choice                  # ~5 min
    .venv/bin/python -m bench.server_choice --only probes    # ~2.5 min
    .venv/bin/python -m bench.server_choice --only throughput --rounds 6 --duration 5

granian is not a dependency of Standby: ``.venv/bin/pip install granian`` first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import shutil
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from bench.client import CHAT_BODY, STREAM_BODY
from bench.processes import (
    Proc,
    ProcessSet,
    cpu_seconds,
    free_port,
    rss_kib,
    wait_until,
)
from bench.saturate import parse_wrk, wrk_path
from bench.stack import MODEL, ROOT, StackSpec, upstream_argv

PLAN_ENV = "STANDBY_BENCH_PLAN"
GRANIAN = ROOT / ".venv" / "bin" / "granian"
PROBE_CAP = 8
PROBE_SERVER: dict[str, Any] = {
    "max_header": "64KiB",
    "header_timeout": "2s",
    "body_timeout": "3s",
    "max_connections": PROBE_CAP,
}
PROBE_KEEP_ALIVE = 4
THROUGHPUT_GRANIAN = [
    "--http1-buffer-size",
    "65536",
    "--http1-header-read-timeout",
    "10000",
    "--backpressure",
    "20000",
]
PROBE_GRANIAN = [
    "--http1-buffer-size",
    "65536",
    "--http1-header-read-timeout",
    "2000",
    "--backpressure",
    "8",
]
BIG_HEADER = 100 * 1024 * 1024
WRITE = 64 * 1024

LUA = """\
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""


def plan_for(upstream: str, server: dict[str, Any] | None = None) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "providers": {"primary": {"kind": "openai-compatible", "base_url": upstream}},
        "timeouts": {"connect": "5s", "first_token": "5s", "idle": "5s", "total": "60s"},
        "routes": {MODEL: {"targets": [f"primary/{MODEL}"]}},
        "journal": {"enabled": False},
    }
    if server:
        plan["server"] = server
    return plan


# the serving processes


def granian_app() -> Any:
    """granian's ``--factory`` target: what ``run_server`` serves, the plan from the env."""
    from standby.plan.model import Plan
    from standby.web.access_log import AccessLog
    from standby.web.app import StandbyApp

    logging.basicConfig(level="WARNING", stream=sys.stderr)
    plan = Plan.model_validate_json(os.environ[PLAN_ENV])
    app = StandbyApp(plan, data_dir=None)
    wrapped = AccessLog(app, metrics=app.metrics)
    gc.collect()  # as run_server does
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    return wrapped


def serve_uvicorn(variant: str, plan_json: str, port: int, keep_alive: int | None) -> None:
    """``--serve``: ``run_server`` as shipped, or uvicorn's plain httptools protocol."""
    import uvicorn

    from standby.plan.model import Plan
    from standby.web import serve as serve_module
    from standby.web.app import StandbyApp

    plan = Plan.model_validate_json(plan_json)
    if keep_alive is not None:
        serve_module.KEEP_ALIVE = keep_alive  # read by uvicorn_config at call time
    if variant == "uvicorn+limits":
        serve_module.run_server(plan, host="127.0.0.1", port=port, log_level="warning")
        return
    logging.basicConfig(level="WARNING", stream=sys.stderr)
    app = StandbyApp(plan, data_dir=None)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        log_config=None,
        access_log=False,
        lifespan="on",
        http="httptools",
        timeout_keep_alive=keep_alive or 75,
        backlog=4096,
    )
    uvicorn.Server(config).run()


def server_argv(variant: str, plan: dict[str, Any], port: int, probe: bool) -> list[str]:
    plan_json = orjson.dumps(plan).decode()
    if variant.startswith("granian"):
        loop = "asyncio" if variant == "granian-asyncio" else "uvloop"
        if variant == "granian-defaults":
            bounds: list[str] = []
        else:
            bounds = PROBE_GRANIAN if probe else THROUGHPUT_GRANIAN
        return [
            str(GRANIAN),
            "--interface",
            "asgi",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--http",
            "1",
            "--loop",
            loop,
            "--no-ws",
            "--log-level",
            "warning",
            "--backlog",
            "4096",
            "--working-dir",
            str(ROOT),
            *bounds,
            "bench.server_choice:granian_app",
        ]
    argv = [sys.executable, "-m", "bench.server_choice", "--serve", variant, plan_json, str(port)]
    if probe:
        argv += ["--keep-alive", str(PROBE_KEEP_ALIVE)]
    return argv


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (granian serves from a child process)."""
    found = [pid]
    for task in _tasks(pid):
        with contextlib.suppress(OSError):
            for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
                found.extend(tree(int(child)))
    return found


def _tasks(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


def tree_cpu(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        with contextlib.suppress(OSError, RuntimeError):
            total += cpu_seconds(p)
    return total


def serving_pid(pid: int) -> int:
    """The process of the tree that holds the app: the one with the largest RSS."""
    best, best_rss = pid, -1
    for p in tree(pid):
        with contextlib.suppress(OSError, RuntimeError):
            rss = rss_kib(p)
            if rss > best_rss:
                best, best_rss = p, rss
    return best


def _post_ok(url: str) -> bool:
    request = urllib.request.Request(
        url, data=CHAT_BODY, method="POST", headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return bool(resp.status == 200)


def _stream_ok(url: str) -> bool:
    request = urllib.request.Request(
        url, data=STREAM_BODY, method="POST", headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        body = resp.read()
    return bool(resp.status == 200 and body.rstrip().endswith(b"data: [DONE]"))


def _get_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return bool(resp.status == 200)


async def start_sim(procs: ProcessSet, delay: float) -> str:
    port = free_port()
    sim = procs.start(
        f"sim-{delay}", upstream_argv(StackSpec("sim", delay), "primary", port), cpus="0"
    )
    upstream = f"http://127.0.0.1:{port}/v1"
    await wait_until(lambda: _get_ok(f"{upstream}/models"), 20, "the sim", sim)
    return upstream


async def start_server(
    procs: ProcessSet, variant: str, plan: dict[str, Any], probe: bool
) -> tuple[Proc, int]:
    port = free_port()
    argv = server_argv(variant, plan, port, probe)
    env_plan = orjson.dumps(plan).decode()
    os.environ[PLAN_ENV] = env_plan  # inherited by the granian process (and ignored by uvicorn)
    proc = procs.start(variant, argv, cpus="1", cwd=ROOT)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    await wait_until(lambda: _post_ok(url), 30, variant, proc)
    return proc, port


# probes


async def run_wrk(url: str, body: bytes, connections: int, duration: float, workdir: Path) -> Any:
    script = workdir / f"{abs(hash(body))}.lua"
    script.write_text(LUA.format(body=body.decode()))
    argv = [
        "taskset",
        "-c",
        "0",
        str(wrk_path()),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(duration + 30):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {(err or out).decode()}")
    return parse_wrk(out.decode())


async def measure(
    proc: Proc, url: str, body: bytes, connections: int, duration: float, workdir: Path
) -> dict[str, float]:
    cpu0 = tree_cpu(proc.pid)
    result = await run_wrk(url, body, connections, duration, workdir)
    cpu = tree_cpu(proc.pid) - cpu0
    bad = result["non_2xx"] + result["socket_errors"]
    if bad:
        raise RuntimeError(f"{proc.name}: {bad} failed requests\n{proc.log_tail()}")
    return {
        "rps": result["ok_rps"],
        "p50": result["latency_ms"]["p50"],
        "p99": result["latency_ms"]["p99"],
        "cpu_us": cpu / result["requests"] * 1e6,
        "core": cpu / result["duration_s"],
    }


async def run_throughput(
    variants: list[str], rounds: int, stream_rounds: int, duration: float, connections: int
) -> dict[str, dict[str, list[dict[str, float]]]]:
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        kind: {v: [] for v in variants} for kind in ("chat", "stream")
    }
    with tempfile.TemporaryDirectory(prefix="standby-server-choice-") as scratch:
        workdir = Path(scratch)
        with ProcessSet(workdir) as procs:
            upstream = await start_sim(procs, 0.0)
            plan = plan_for(upstream)
            servers: dict[str, tuple[Proc, str]] = {}
            for variant in variants:
                proc, port = await start_server(procs, variant, plan, probe=False)
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                if not await asyncio.to_thread(_stream_ok, url):
                    raise RuntimeError(f"{variant}: a stream did not end with [DONE]")
                await run_wrk(url, CHAT_BODY, connections, 2, workdir)  # warm-up
                servers[variant] = (proc, url)
            for kind, body, n in (
                ("chat", CHAT_BODY, rounds),
                ("stream", STREAM_BODY, stream_rounds),
            ):
                for rnd in range(n):
                    order = variants if rnd % 2 == 0 else variants[::-1]
                    for variant in order:
                        proc, url = servers[variant]
                        fig = await measure(proc, url, body, connections, duration, workdir)
                        results[kind][variant].append(fig)
                        print(
                            f"{kind:6} round {rnd + 1} {variant:15} {fig['rps']:7.0f} req/s  "
                            f"p50 {fig['p50']:6.2f} ms  p99 {fig['p99']:6.2f} ms  "
                            f"{fig['cpu_us']:6.1f} µs CPU/req  core {fig['core']:.0%}",
                            flush=True,
                        )
    return results


def report_throughput(results: dict[str, dict[str, list[dict[str, float]]]], base: str) -> None:
    print(
        "\n| workload | server | req/s | p50 ms | p99 ms | CPU µs/req | ratio req/s vs "
        f"{base} (median of rounds) | per-round ratios |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for kind, by_variant in results.items():
        if not by_variant[base]:
            continue
        for variant, runs in by_variant.items():
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            ratios = [r["rps"] / b["rps"] for r, b in zip(runs, by_variant[base], strict=True)]
            print(
                f"| {kind} | {variant} | {med['rps']:.0f} | {med['p50']:.2f} | {med['p99']:.2f} "
                f"| {med['cpu_us']:.0f} | {statistics.median(ratios):.3f} | "
                + " ".join(f"{x:.3f}" for x in ratios)
                + " |"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("probes", "throughput"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stream-rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--probe-wait", type=float, default=12.0)
    parser.add_argument(
        "--variants", default="uvicorn+limits,granian", help="also: granian-asyncio"
    )
    parser.add_argument("--serve", nargs=3, metavar=("VARIANT", "PLAN", "PORT"))
    parser.add_argument("--keep-alive", type=int)
    args = parser.parse_args(argv)
    if args.serve:
        variant, plan_json, port = args.serve
        serve_uvicorn(variant, plan_json, int(port), args.keep_alive)
        return 0
    if not GRANIAN.exists():
        print("granian is needed: .venv/bin/pip install granian", file=sys.stderr)
        return 2
    if wrk_path() is None or shutil.which("taskset") is None:
        print("wrk and taskset are needed", file=sys.stderr)
        return 2
    if not (1 <= args.rounds <= 20 and 0 <= args.stream_rounds <= 20):
        print("--rounds 1..20, --stream-rounds 0..20", file=sys.stderr)
        return 2
    if not (1 <= args.duration <= 30 and 1 <= args.connections <= 1000):
        print("--duration 1..30, --connections 1..1000", file=sys.stderr)
        return 2
    if not 3 <= args.probe_wait <= 60:
        print("--probe-wait 3..60", file=sys.stderr)
        return 2
    import granian

    print(f"granian {granian.__version__}; load average {os.getloadavg()}", flush=True)
    if args.only in (None, "probes"):
        from bench.server_probes import report_probes, run_probes  # it imports this module

        report_probes(asyncio.run(run_probes(args.probe_wait)))
    if args.only in (None, "throughput"):
        variants = args.variants.split(",")
        results = asyncio.run(
            run_throughput(
                variants, args.rounds, args.stream_rounds, args.duration, args.connections
            )
        )
        report_throughput(results, variants[0])
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
