"""Many slow streams open at once, and the gateway's RSS while they are.

``streams`` streaming requests are started evenly over ``ramp_s`` seconds against an
upstream that streams slowly (each stream stays open ~10 s), so at some point all of them
are open together.  A sampler reads ``VmRSS`` (and the open fd count) of the watched PID
every ``every`` seconds, tagged with how many streams were open then.  Every stream is
checked: HTTP 200, the expected text, ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any

from bench.client import Result, StreamCounters, new_session, stream, tally
from bench.processes import hwm_kib, rss_kib
from bench.stats import summarize


@dataclass(frozen=True, slots=True)
class Sample:
    """One RSS reading."""

    at_s: float
    rss_kib: int
    open_streams: int
    fds: int


def _fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


async def _sample(
    pid: int,
    counters: StreamCounters,
    start: float,
    every: float,
    into: list[Sample],
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        with contextlib.suppress(OSError, RuntimeError):
            into.append(
                Sample(time.perf_counter() - start, rss_kib(pid), counters.open_now, _fd_count(pid))
            )
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


async def many_streams(
    url: str,
    streams: int,
    ramp_s: float,
    expected: str | None,
    watch_pid: int | None,
    stream_timeout: float = 60.0,
    every: float = 0.2,
) -> dict[str, Any]:
    """Open ``streams`` streams over ``ramp_s`` s; return outcomes, timings and RSS."""
    counters = StreamCounters()
    samples: list[Sample] = []
    stop = asyncio.Event()
    start = time.perf_counter()
    sampler = (
        asyncio.create_task(_sample(watch_pid, counters, start, every, samples, stop))
        if watch_pid is not None
        else None
    )
    results: list[Result] = []
    async with new_session(0, stream_timeout) as session:

        async def one(scheduled: float) -> None:
            results.append(await stream(session, url, scheduled, expected, counters))

        tasks = []
        for i in range(streams):
            scheduled = start + 0.05 + i * ramp_s / streams
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(scheduled)))
        _done, pending = await asyncio.wait(tasks, timeout=stream_timeout + 10.0)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5.0)
    elapsed = time.perf_counter() - start
    await asyncio.sleep(1.0)  # let the gateway drop finished streams before "after"
    stop.set()
    if sampler is not None:
        await sampler
    ok = [r for r in results if r.outcome == "ok"]
    data: dict[str, Any] = {
        "streams": streams,
        "ramp_s": ramp_s,
        "elapsed_s": elapsed,
        "completed_ok": len(ok),
        "unfinished": len(pending),
        "outcomes": tally(results),
        "peak_open": counters.peak_open,
        "ttft_ms": summarize([r.ttft_ms for r in ok if r.ttft_ms is not None]),
        "stream_ms": summarize([r.latency_ms for r in ok]),
        "texts": [r.text for r in ok],  # the caller pops this (checks direct's agreement)
    }
    if watch_pid is not None:
        data["rss"] = _rss_summary(samples, streams, watch_pid)
    return data


def _rss_summary(samples: list[Sample], streams: int, pid: int) -> dict[str, Any]:
    """RSS while all streams were open (or at the most-open moment), peak and after."""
    most_open = max((s.open_streams for s in samples), default=0)
    at_most = [s for s in samples if s.open_streams == most_open]
    best = max(at_most, key=lambda s: s.rss_kib) if at_most else None
    after = rss_kib(pid)
    return {
        "samples": len(samples),
        "all_open_samples": sum(1 for s in samples if s.open_streams >= streams),
        "max_open_seen": most_open,
        "rss_at_max_open_kib": best.rss_kib if best else None,
        "fds_at_max_open": best.fds if best else None,
        "rss_peak_sampled_kib": max((s.rss_kib for s in samples), default=None),
        "vm_hwm_kib": hwm_kib(pid),
        "rss_after_kib": after,
        "timeline": [[round(s.at_s, 2), s.rss_kib, s.open_streams] for s in samples[::5]],
    }
