"""What the connection limits and the access log cost at saturation, in one run.

Three gateways on the same plan, one at a time, each pinned to core 1 in front of one
``standby sim`` (core 0, with wrk):

* ``before``: uvicorn's own httptools protocol, no access log (the server as it was);
* ``limits``: ``run_server`` as shipped: head cap, head/body deadlines, connection cap,
  and the access log wrapper with INFO off (``--log-level warning``, the default);
* ``access``: the same with ``--log-level info``: one access line per request.

The three gateways are started (and warmed with 2 s of wrk) once, then measured in turns,
``--duration`` s of wrk each (``-t1 -c32``, non-streaming chat completions, journal off to
isolate the HTTP layer), the order rotating every repetition, so that whatever else runs
on this shared machine weighs on all three alike.  Reported: 2xx req/s and gateway CPU µs per
request, medians over repetitions, and each variant's ratio to ``before``.

    .venv/bin/python -m bench.limits_bench               # 3 reps of 5 s, ~1 min
    .venv/bin/python -m bench.limits_bench --reps 5 --duration 8
    .venv/bin/python -m bench.limits_bench --micro       # the protocol alone, ~10 s

``--micro`` isolates the protocol: one process, no sockets, a fake transport and an app
that answers at once; µs per keep-alive request for uvicorn's ``HttpToolsProtocol`` and
for ``LimitedHttpToolsProtocol``, alternating, best of ``--reps`` rounds.  On a shared
machine this is the steadier figure; the saturation run says what it means end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from bench.processes import Proc, ProcessSet, cpu_seconds, free_port, wait_until
from bench.saturate import run_wrk, wrk_path
from bench.stack import CHAT_BODY, MODEL, StackSpec, upstream_argv

VARIANTS = ("before", "limits", "access")


def plan_for(upstream: str) -> dict[str, Any]:
    return {
        "providers": {"primary": {"kind": "openai-compatible", "base_url": upstream}},
        "timeouts": {"connect": "5s", "first_token": "5s", "idle": "5s", "total": "60s"},
        "routes": {MODEL: {"targets": [f"primary/{MODEL}"]}},
        "journal": {"enabled": False},
    }


def serve(variant: str, plan_json: str, port: int) -> None:
    """The gateway process of one variant (``--serve``)."""
    import uvicorn

    from standby.plan.model import Plan
    from standby.web.app import StandbyApp
    from standby.web.serve import run_server

    plan = Plan.model_validate_json(plan_json)
    if variant != "before":
        level = "info" if variant == "access" else "warning"
        run_server(plan, host="127.0.0.1", port=port, log_level=level)
        return
    # the server as it was before web/limits.py and web/access_log.py
    logging.basicConfig(level="WARNING", stream=sys.stderr)
    app = StandbyApp(plan, data_dir=None)
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        loop="auto",
        http="httptools",
        server_header=False,
        date_header=False,
        timeout_keep_alive=75,
        backlog=4096,
    )
    print(f"Standby listening on http://127.0.0.1:{port}/v1", file=sys.stderr, flush=True)
    uvicorn.Server(config).run()


def _post_ok(url: str) -> bool:
    request = urllib.request.Request(
        url, data=CHAT_BODY, method="POST", headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return bool(resp.status == 200)


async def start_gateway(procs: ProcessSet, variant: str, upstream: str) -> tuple[Proc, str]:
    """One variant's gateway, pinned to core 1, answering; returns it and its chat URL."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "bench.limits_bench",
        "--serve",
        variant,
        orjson.dumps(plan_for(upstream)).decode(),
        str(port),
    ]
    gateway = procs.start(f"gateway-{variant}", argv, cpus="1", cwd=Path.cwd())
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    await wait_until(lambda: _post_ok(url), 30, f"the {variant} gateway", gateway)
    await run_wrk(url, 32, 2, procs.workdir)  # warm-up, not recorded
    return gateway, url


async def measure(procs: ProcessSet, gateway: Proc, url: str, duration: float) -> dict[str, float]:
    """One wrk run against one (idle until now) gateway."""
    cpu_before = cpu_seconds(gateway.pid)
    result = await run_wrk(url, 32, duration, procs.workdir)
    cpu = cpu_seconds(gateway.pid) - cpu_before
    bad = result["non_2xx"] + result["socket_errors"]
    if bad:
        raise RuntimeError(f"{gateway.name}: {bad} failed requests:\n{gateway.log_tail()}")
    return {
        "rps": result["ok_rps"],
        "cpu_us": cpu / result["requests"] * 1e6,
        "cpu_share": cpu / result["duration_s"],
    }


async def run(reps: int, duration: float) -> dict[str, list[dict[str, float]]]:
    """All three gateways up at once (idle ones cost nothing), measured in turns."""
    results: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="standby-limits-bench-") as scratch:
        with ProcessSet(Path(scratch)) as procs:
            port = free_port()
            sim = procs.start("sim", upstream_argv(StackSpec("sim", 0.0), "primary", port), "0")
            upstream = f"http://127.0.0.1:{port}/v1"
            await wait_until(lambda: _get_ok(f"{upstream}/models"), 20, "the sim", sim)
            gateways = {
                variant: await start_gateway(procs, variant, upstream) for variant in VARIANTS
            }
            for rep in range(reps):
                order = VARIANTS[rep % 3 :] + VARIANTS[: rep % 3]
                for variant in order:
                    figures = await measure(procs, *gateways[variant], duration)
                    results[variant].append(figures)
                    print(
                        f"rep {rep + 1} {variant:7} {figures['rps']:8.0f} req/s "
                        f"{figures['cpu_us']:6.1f} µs CPU/req "
                        f"(gateway core {figures['cpu_share']:.0%})",
                        flush=True,
                    )
    return results


def _get_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return bool(resp.status == 200)


def report(results: dict[str, list[dict[str, float]]]) -> None:
    base = results["before"]
    print("\nvariant   req/s (median)  ratio   µs CPU/req  ratio   per-rep req/s ratios")
    for variant in VARIANTS:
        runs = results[variant]
        rps = statistics.median(r["rps"] for r in runs)
        cpu = statistics.median(r["cpu_us"] for r in runs)
        base_rps = statistics.median(r["rps"] for r in base)
        base_cpu = statistics.median(r["cpu_us"] for r in base)
        pairs = " ".join(f"{r['rps'] / b['rps']:.3f}" for r, b in zip(runs, base, strict=True))
        print(
            f"{variant:8} {rps:10.0f}  {rps / base_rps:9.3f}  {cpu:9.1f}  "
            f"{cpu / base_cpu:6.3f}   {pairs}"
        )
    print(f"load average at end: {os.getloadavg()}")


class FakeTransport:
    """Just enough of an ``asyncio.Transport`` for a protocol fed by hand."""

    def __init__(self) -> None:
        self.written = 0
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _answer(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


async def _per_request_us(protocol_class: Any, requests: int) -> float:
    import uvicorn
    from uvicorn.server import ServerState

    config = uvicorn.Config(_answer, log_config=None, lifespan="off", http=protocol_class)
    config.load()
    state = ServerState()
    protocol = protocol_class(config=config, server_state=state, app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)
    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    request += b"Content-Length: %d\r\n\r\n%s" % (len(CHAT_BODY), CHAT_BODY)
    started = time.perf_counter()
    for _ in range(requests):
        protocol.data_received(request)
        for task in list(state.tasks):
            await task
    elapsed = time.perf_counter() - started
    protocol.connection_lost(None)
    if transport.written < requests * 20:
        raise RuntimeError("the protocol did not answer")
    return elapsed / requests * 1e6


def micro(reps: int) -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from standby.plan.model import Server
    from standby.web.limits import limited_protocol

    classes = {"before": HttpToolsProtocol, "limits": limited_protocol(Server())}
    best: dict[str, float] = {}
    for _ in range(reps):
        for name, protocol_class in classes.items():
            figure = asyncio.run(_per_request_us(protocol_class, 5_000))
            best[name] = min(best.get(name, figure), figure)
    added = best["limits"] - best["before"]
    print(
        f"protocol µs/request, best of {reps}: before {best['before']:.2f}, "
        f"limits {best['limits']:.2f} ({added:+.2f} µs, x{best['limits'] / best['before']:.3f})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--serve", nargs=3, metavar=("VARIANT", "PLAN", "PORT"))
    parser.add_argument("--micro", action="store_true", help="the protocol alone")
    args = parser.parse_args(argv)
    if args.serve:
        variant, plan_json, port = args.serve
        serve(variant, plan_json, int(port))
        return 0
    if args.micro:
        micro(max(1, min(args.reps, 20)))
        return 0
    if wrk_path() is None:
        print("wrk is needed (apt-get install wrk)", file=sys.stderr)
        return 2
    if not 1 <= args.reps <= 20 or not 1 <= args.duration <= 60:
        print("--reps 1..20, --duration 1..60", file=sys.stderr)
        return 2
    print(f"load average at start: {os.getloadavg()}", flush=True)
    report(asyncio.run(run(args.reps, args.duration)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
