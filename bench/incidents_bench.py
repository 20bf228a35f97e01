"""How fast does Standby notice an outage and tell someone, and does it cry wolf?

    python -m bench.incidents_bench [--reps N] [--minutes M] [--out bench/results/NAME]

A real gateway (``standby.testing.running_gateway``, the plan's defaults for probes and
detection) in front of two ``standby sim`` providers, and a signed-webhook receiver on
loopback, all in this process.  Three measurements:

1. **Under traffic** (2 requests/s): from the moment the primary starts answering 503 to
   the incident being open (``GET /standby/incidents?open=true``) and to the first
   webhook delivered; then the primary recovers and the incident must resolve.  ``N``
   repetitions.  Target: ≤ 10 s to the first notification.
2. **No traffic at all**: the same, found by probes alone (default interval 15 s).
   Target: ≤ 2 probe intervals.
3. **False incidents**: ``M`` minutes (default 10) of 2 requests/s while the primary fails
   1 % of requests at random (the sim's ``flap`` fault) and, half-way, fails everything for
   3 s (a blip).  Target: no incident.

The anchors' defaults, for comparison: Uptime Kuma checks every 60 s; Gatus every 60 s and
needs 3 failures in a row (~2-3 min); a provider's own status page often acknowledges an
outage many minutes after users feel it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from standby.sim import Fault, SimProvider
from standby.testing import RunningGateway, running_gateway

SECRET = "bench-hook-secret"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


class Receiver:
    """A webhook receiver: when each event arrived."""

    def __init__(self) -> None:
        self.url = ""
        self.received: list[tuple[float, dict[str, Any]]] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def hook(request: web.Request) -> web.Response:
            self.received.append((time.monotonic(), await request.json()))
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def first(self, event: str, after: float) -> float | None:
        for at, body in self.received:
            if at >= after and body.get("event") == event:
                return at
        return None


def plan(primary: SimProvider, backup: SimProvider, hook: str) -> dict[str, Any]:
    return {
        "providers": {
            "primary": {"kind": "openai-compatible", "base_url": primary.base_url},
            "backup": {"kind": "openai-compatible", "base_url": backup.base_url},
        },
        "timeouts": {"connect": "2s", "first_token": "5s", "idle": "5s", "total": "30s"},
        "routes": {"gpt-4o-mini": {"targets": ["primary/gpt-4o-mini", "backup/gpt-4o-mini"]}},
        "notify": {
            "channels": {"hooks": {"kind": "webhook", "url": hook, "secret": SECRET}},
            "escalation": [{"after": "0s", "notify": ["hooks"]}],
        },
    }


@contextlib.asynccontextmanager
async def traffic(gw: RunningGateway, rate: float) -> AsyncIterator[dict[str, int]]:
    """``rate`` requests a second, open loop, while the block runs; answers by provider."""
    served: dict[str, int] = {}

    async def one(session: aiohttp.ClientSession) -> None:
        async with session.post(f"{gw.base_url}/chat/completions", json=BODY) as resp:
            key = resp.headers.get("x-standby-provider", f"http {resp.status}")
            served[key] = served.get(key, 0) + 1

    async def run() -> None:
        tasks: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession() as session:
            start = time.monotonic()
            sent = 0
            try:
                while True:
                    task = asyncio.create_task(one(session))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    sent += 1
                    await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))
            finally:
                for task in tasks:
                    task.cancel()

    task = asyncio.create_task(run())
    try:
        yield served
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def open_incidents(gw: RunningGateway) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gw.root_url}/standby/incidents?limit=500") as resp,
    ):
        data: list[dict[str, Any]] = (await resp.json())["data"]
        return data


async def until(check: Any, limit: float, every: float = 0.1) -> float | None:
    """Poll ``check()`` until true; when it became true (monotonic), or None."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await check():
            return time.monotonic()
        await asyncio.sleep(every)
    return None


async def one_outage(
    gw: RunningGateway, primary: SimProvider, receiver: Receiver, limit: float
) -> dict[str, Any]:
    before = {i["id"] for i in await open_incidents(gw)}
    primary.set_fault(Fault("error", status=503))
    down = time.monotonic()

    async def opened() -> bool:
        return any(
            i["id"] not in before and i["status"] != "resolved" for i in await open_incidents(gw)
        )

    opened_at = await until(opened, limit)
    notified_at = await until(
        lambda: _ready(receiver.first("opened", down) is not None), limit, every=0.05
    )
    primary.clear()
    up = time.monotonic()
    resolved_at = await until(
        lambda: _ready(receiver.first("resolved", up) is not None), 90.0, every=0.1
    )
    return {
        "to_open_s": None if opened_at is None else round(opened_at - down, 2),
        "to_notification_s": None if notified_at is None else round(notified_at - down, 2),
        "to_resolution_after_recovery_s": None
        if resolved_at is None
        else round(resolved_at - up, 2),
    }


async def _ready(value: bool) -> bool:
    return value


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    receiver = Receiver()
    await receiver.start()
    try:
        async with (
            SimProvider("primary", words=4) as primary,
            SimProvider("backup", words=4) as backup,
        ):
            print("[incidents] under traffic", file=sys.stderr)
            async with running_gateway(plan(primary, backup, receiver.url)) as gw:
                runs = []
                async with traffic(gw, 2.0):
                    await asyncio.sleep(10.0)  # a healthy baseline first
                    for _ in range(args.reps):
                        runs.append(await one_outage(gw, primary, receiver, 60.0))
                        await asyncio.sleep(10.0)
                results["traffic"] = runs
            print("[incidents] no traffic", file=sys.stderr)
            async with running_gateway(plan(primary, backup, receiver.url)) as gw:
                await asyncio.sleep(25.0)  # the first round of probes is behind us
                results["no_traffic"] = [await one_outage(gw, primary, receiver, 90.0)]
            print(f"[incidents] false alarms, {args.minutes} min", file=sys.stderr)
            async with running_gateway(plan(primary, backup, receiver.url)) as gw:
                seconds = args.minutes * 60.0
                primary.set_fault(Fault("flap", fraction=0.01, seed=11))
                async with traffic(gw, 2.0) as served:
                    await asyncio.sleep(seconds / 2)
                    primary.set_fault(Fault("error", status=503))
                    await asyncio.sleep(3.0)
                    primary.set_fault(Fault("flap", fraction=0.01, seed=12))
                    await asyncio.sleep(seconds / 2 - 3.0)
                primary.clear()
                incidents = await open_incidents(gw)
                results["false_alarms"] = {
                    "minutes": args.minutes,
                    "served": served,
                    "incidents": len(incidents),
                    "notifications": len(receiver.received),
                }
    finally:
        await receiver.stop()
    return results


def render(results: dict[str, Any]) -> str:
    def med(rows: list[dict[str, Any]], key: str) -> str:
        values = [row[key] for row in rows if row[key] is not None]
        missing = len(rows) - len(values)
        shown = f"{statistics.median(values):.2f} s" if values else "never"
        return shown + (f" ({missing} never)" if missing and values else "")

    traffic, quiet, alarms = results["traffic"], results["no_traffic"], results["false_alarms"]
    lines = [
        f"# Incidents: detection and false alarms — {results['started']}",
        "",
        "`python -m bench.incidents_bench` (plan defaults: probes every 15 s, detection over",
        "a 5 s window, 5 bad evaluations a second apart to open).",
        "",
        "| measurement | median | each run | target |",
        "|---|---:|---|---:|",
        f"| outage → incident open, 2 req/s | {med(traffic, 'to_open_s')} | "
        f"{[r['to_open_s'] for r in traffic]} | |",
        f"| outage → first notification, 2 req/s | {med(traffic, 'to_notification_s')} | "
        f"{[r['to_notification_s'] for r in traffic]} | ≤ 10 s |",
        f"| recovery → resolved notification, 2 req/s | "
        f"{med(traffic, 'to_resolution_after_recovery_s')} | "
        f"{[r['to_resolution_after_recovery_s'] for r in traffic]} | |",
        f"| outage → first notification, no traffic | {med(quiet, 'to_notification_s')} | "
        f"{[r['to_notification_s'] for r in quiet]} | ≤ 30 s (2 probe intervals) |",
        f"| false incidents, {alarms['minutes']} min at 2 req/s, 1 % errors + a 3 s blip | "
        f"{alarms['incidents']} | served: {alarms['served']} | 0 |",
        "",
        "Anchors' defaults: Uptime Kuma checks every 60 s; Gatus every 60 s with 3 failures",
        "in a row before alerting (2-3 min); providers' status pages acknowledge outages",
        "minutes after users feel them.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--reps", type=int, default=3, help="outages under traffic")
    parser.add_argument("--minutes", type=float, default=10.0, help="false-alarm run length")
    parser.add_argument("--out", type=Path, help="write NAME.json and NAME.md")
    args = parser.parse_args(argv)
    results = asyncio.run(main_async(args))
    text = render(results)
    print(text)
    if args.out is not None:
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
