"""Closed-loop saturation: ``connections`` clients each send the next request at once.

``wrk`` (pinned, one thread, a Lua script setting the POST body) when it is installed,
otherwise an aiohttp loop.  Requests/s counts 2xx answers only.  Latency here is
closed-loop (it hides queueing) and is reported for information only.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from pathlib import Path
from typing import Any

from bench.client import CHAT_BODY, chat, new_session
from bench.stats import summarize

LUA = """\
-- written by bench/saturate.py: POST one non-streaming chat completion per request
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench-client"
"""

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk_path() -> str | None:
    """The ``wrk`` executable, if installed."""
    return shutil.which("wrk")


async def run_wrk(
    url: str, connections: int, duration: float, workdir: Path, cpus: str | None = "0"
) -> dict[str, Any]:
    """Run wrk against ``url`` (``…/chat/completions``) and parse its summary.

    wrk is killed if this is cancelled (Ctrl-C) or overruns ``duration + 30`` s.
    """
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not installed")
    script = workdir / "post.lua"
    script.write_text(LUA.format(body=CHAT_BODY.decode()))
    argv = [
        wrk,
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
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
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
        raise RuntimeError(f"wrk failed ({proc.returncode}): {(err or out).decode()}")
    return parse_wrk(out.decode()) | {"engine": "wrk", "connections": connections}


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests, 2xx requests/s, errors and latency percentiles from wrk's output."""
    found = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if found is None:
        raise RuntimeError(f"unexpected wrk output:\n{text}")
    requests = int(found.group(1))
    seconds = float(found.group(2)) * _UNITS[found.group(3)] / 1000.0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    bad = int(non2xx.group(1)) if non2xx else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    socket_errors = sum(int(x) for x in sock.groups()) if sock else 0
    latency = {f"p{q}": _wrk_ms(text, q) for q in ("50", "90", "99")}
    return {
        "requests": requests,
        "duration_s": seconds,
        "non_2xx": bad,
        "socket_errors": socket_errors,
        "ok_rps": (requests - bad) / seconds,
        "latency_ms": latency,
    }


def _wrk_ms(text: str, quantile: str) -> float | None:
    found = re.search(rf"^\s+{quantile}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    return float(found.group(1)) * _UNITS[found.group(2)] if found else None


async def run_aiohttp(url: str, connections: int, duration: float) -> dict[str, Any]:
    """The same measurement with ``connections`` aiohttp workers (slower client)."""
    latencies: list[float] = []
    failures = 0
    stop_at = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal failures
        while time.perf_counter() < stop_at:
            result = await chat(session, url, time.perf_counter())
            if result.outcome == "ok":
                latencies.append(result.latency_ms)
            else:
                failures += 1

    async with new_session(connections, 10.0) as session:
        started = time.perf_counter()
        tasks = [asyncio.create_task(worker()) for _ in range(connections)]
        await asyncio.wait(tasks, timeout=duration + 15.0)
        for task in tasks:
            task.cancel()
        elapsed = time.perf_counter() - started
    summary = summarize(latencies)
    return {
        "engine": "aiohttp",
        "connections": connections,
        "duration_s": elapsed,
        "requests": len(latencies) + failures,
        "non_2xx": failures,
        "socket_errors": 0,
        "ok_rps": len(latencies) / elapsed,
        "latency_ms": {k: summary[k] for k in ("p50", "p90", "p99")},
    }


async def saturate(
    url: str, connections: int, duration: float, workdir: Path, engine: str = "auto"
) -> dict[str, Any]:
    """Saturation with ``engine`` (``wrk``, ``aiohttp`` or ``auto`` = wrk when present)."""
    if engine == "wrk" or (engine == "auto" and wrk_path() is not None):
        return await run_wrk(url, connections, duration, workdir)
    return await run_aiohttp(url, connections, duration)
