"""The measured phases, each run direct-to-upstream and through Standby.

A measurement is repeated ``reps`` times as direct/standby pairs, alternating which side
goes first; the reported "added" / ratio is the median of the per-pair differences, so
slow drifts of the shared machine's load cancel out within a pair.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bench import client
from bench.load import open_loop
from bench.memory import many_streams
from bench.processes import cpu_seconds, rss_kib
from bench.saturate import saturate
from bench.settings import Settings
from bench.stack import CHUNKS, Stack
from bench.stats import diff, median, ratio

Measure = Callable[[str, str], Awaitable[dict[str, Any]]]
SIDES = ("direct", "standby")


def urls(stack: Stack) -> dict[str, str]:
    """The chat completions URL of each side."""
    return {
        "direct": f"{stack.direct}/chat/completions",
        "standby": f"{stack.gateway_url}/chat/completions",
    }


async def paired(reps: int, measure: Measure, targets: dict[str, str]) -> list[dict[str, Any]]:
    """``reps`` direct/standby pairs, the first side alternating."""
    pairs = []
    for rep in range(reps):
        pair: dict[str, Any] = {}
        for side in SIDES if rep % 2 == 0 else SIDES[::-1]:
            pair[side] = await measure(side, targets[side])
            await asyncio.sleep(0.3)
        pairs.append(pair)
    return pairs


def combine(
    pairs: list[dict[str, Any]], key: str, quantiles: tuple[str, ...] = ("p50", "p99")
) -> dict[str, Any]:
    """Median per side and median per-pair ``standby - direct`` of ``pairs[*][side][key]``."""
    out: dict[str, Any] = {}
    for q in quantiles:
        values = {side: [p[side][key][q] for p in pairs] for side in SIDES}
        out[q] = {
            "direct": median(values["direct"]),
            "standby": median(values["standby"]),
            "added": median(
                [diff(s, d) for s, d in zip(values["standby"], values["direct"], strict=True)]
            ),
        }
    return out


def failures(pairs: list[dict[str, Any]]) -> dict[str, int]:
    """Requests that did not succeed, per side, over all pairs."""
    return {side: sum(p[side]["sent"] - p[side]["ok"] for p in pairs) for side in SIDES}


async def warm_up(stack: Stack, s: Settings, session: aiohttp.ClientSession) -> None:
    """Unrecorded: a saturation burst and a second of streams on both sides."""
    for url in urls(stack).values():
        await saturate(url, s.sat_connections, s.warmup, stack.gateway.log.parent, s.engine)
        fire = functools.partial(client.stream, session, url)
        await open_loop(fire, 20, 1.0, request_timeout=s.timeout)


async def reference_text(session: aiohttp.ClientSession, stack: Stack) -> str:
    """The text the upstream streams (one direct stream)."""
    result = await client.stream(session, urls(stack)["direct"], time.perf_counter())
    if result.outcome != "ok" or not result.text:
        raise RuntimeError(f"the upstream's reference stream failed: {result.outcome}")
    return result.text


async def latency(stack: Stack, s: Settings, session: aiohttp.ClientSession) -> dict[str, Any]:
    """Open-loop non-streaming latency at each fixed rate."""
    out: dict[str, Any] = {}
    for rate, duration in s.rates:

        async def measure(
            side: str, url: str, rate: float = rate, duration: float = duration
        ) -> dict[str, Any]:
            run = await open_loop(
                lambda t: client.chat(session, url, t), rate, duration, request_timeout=s.timeout
            )
            return run.to_json()

        pairs = await paired(s.reps, measure, urls(stack))
        out[f"{rate:g}"] = {
            "latency_ms": combine(pairs, "latency_ok_ms"),
            "failures": failures(pairs),
            "pairs": pairs,
        }
    return out


async def saturation(stack: Stack, s: Settings) -> dict[str, Any]:
    """Closed-loop requests/s, with the CPU each process used meanwhile."""
    watched = {"gateway": [stack.gateway.pid], "upstreams": stack.upstream_pids}

    async def measure(side: str, url: str) -> dict[str, Any]:
        before = {k: sum(cpu_seconds(p) for p in pids) for k, pids in watched.items()}
        started = time.perf_counter()
        result = await saturate(
            url, s.sat_connections, s.sat_duration, stack.gateway.log.parent, s.engine
        )
        elapsed = time.perf_counter() - started
        used = {k: sum(cpu_seconds(p) for p in pids) - before[k] for k, pids in watched.items()}
        result["cpu_pct"] = {k: round(100 * v / elapsed, 1) for k, v in used.items()}
        served = result["requests"] - result["non_2xx"]
        if side == "standby" and served:
            result["gateway_cpu_us_per_request"] = round(1e6 * used["gateway"] / served, 1)
        return result

    pairs = await paired(s.reps, measure, urls(stack))
    rps = {side: [p[side]["ok_rps"] for p in pairs] for side in SIDES}
    return {
        "engine": pairs[0]["direct"]["engine"],
        "connections": s.sat_connections,
        "ok_rps": {
            "direct": median(rps["direct"]),
            "standby": median(rps["standby"]),
            "ratio": median(
                [ratio(b, a) for a, b in zip(rps["direct"], rps["standby"], strict=True)]
            ),
        },
        "latency_ms": combine(pairs, "latency_ms"),
        "gateway_cpu_pct": median([p["standby"]["cpu_pct"]["gateway"] for p in pairs]),
        "upstream_cpu_pct": {
            side: median([p[side]["cpu_pct"]["upstreams"] for p in pairs]) for side in SIDES
        },
        "gateway_cpu_us_per_request": median(
            [p["standby"].get("gateway_cpu_us_per_request") for p in pairs]
        ),
        "errors": {
            side: sum(p[side]["non_2xx"] + p[side]["socket_errors"] for p in pairs)
            for side in SIDES
        },
        "pairs": pairs,
    }


async def streaming(
    stack: Stack, s: Settings, session: aiohttp.ClientSession, expected: str
) -> dict[str, Any]:
    """Open-loop streams: TTFT (to the first non-empty content), TTFB, whole stream."""

    async def measure(side: str, url: str) -> dict[str, Any]:
        run = await open_loop(
            lambda t: client.stream(session, url, t, expected),
            s.stream_rate,
            s.stream_duration,
            request_timeout=s.timeout,
        )
        return run.to_json()

    pairs = await paired(s.reps, measure, urls(stack))
    if any("ttft_ms" not in p[side] for p in pairs for side in SIDES):
        raise RuntimeError(f"no successful stream on one side: {pairs}")
    return {
        "rate": s.stream_rate,
        "chunk_delay_s": s.stream_chunk_delay,
        "ttft_ms": combine(pairs, "ttft_ms"),
        "ttfb_ms": combine(pairs, "ttfb_ms"),
        "stream_ms": combine(pairs, "latency_ok_ms"),
        "failures": failures(pairs),
        "pairs": pairs,
    }


async def memory(stack: Stack, s: Settings) -> dict[str, Any]:
    """Idle RSS, then ``memory_streams`` slow streams direct, then through Standby."""
    pid = stack.gateway.pid
    fresh = rss_kib(pid)
    async with client.new_session(16, s.timeout) as session:
        target = urls(stack)["standby"]
        await open_loop(
            lambda t: client.chat(session, target, t), 200, 1.0, request_timeout=s.timeout
        )
    await asyncio.sleep(1.0)
    idle = rss_kib(pid)
    n, ramp = s.memory_streams, s.memory_ramp
    direct = await many_streams(urls(stack)["direct"], n, ramp, None, None)
    texts = Counter(direct.pop("texts"))
    expected = texts.most_common(1)[0][0] if texts else None
    direct["distinct_texts"] = len(texts)
    direct["completed_ok"] = texts[expected] if expected is not None else 0
    await asyncio.sleep(1.0)
    cpu_before, started = cpu_seconds(pid), time.perf_counter()
    standby = await many_streams(target, n, ramp, expected, pid)
    standby.pop("texts")
    cpu = cpu_seconds(pid) - cpu_before
    standby["gateway_cpu_s"] = round(cpu, 2)
    standby["gateway_cpu_pct"] = round(100 * cpu / (time.perf_counter() - started), 1)
    events = n * (CHUNKS + 3)  # role, 20 contents, finish, [DONE] per stream
    standby["gateway_cpu_us_per_event"] = round(1e6 * cpu / events, 1)
    rss = standby["rss"]
    at_open = rss["rss_at_max_open_kib"]
    return {
        "streams": n,
        "chunk_delay_s": s.memory_chunk_delay,
        "ramp_s": ramp,
        "rss_fresh_kib": fresh,
        "rss_idle_kib": idle,
        "rss_open_kib": at_open,
        "rss_added_kib": diff(at_open, idle),
        "kib_per_stream": None if at_open is None else (at_open - idle) / n,
        "direct": direct,
        "standby": standby,
    }
