"""Open-loop load at a fixed rate, safe from coordinated omission.

Request ``i`` is *scheduled* at ``start + i / rate`` whatever happened to earlier ones,
and its latency is measured from that scheduled time, so a slow server shows up as
latency, not as a lower send rate.  ``send_lag`` (actual - scheduled send) tells whether
the generator itself kept up.  Bounded: exactly ``round(rate x duration)`` sends at most,
``max_inflight`` concurrent (excess is counted as ``shed``, not sent), and a hard stop at
``duration + request_timeout + 5`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.client import Result, tally
from bench.stats import summarize

Fire = Callable[[float], Awaitable[Result]]
MAX_SENDS = 200_000


@dataclass
class LoadRun:
    """The results of one open-loop run."""

    rate: float
    duration: float
    results: list[Result] = field(default_factory=list)
    send_lag_ms: list[float] = field(default_factory=list)
    shed: int = 0
    unfinished: int = 0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> list[Result]:
        """The successful results."""
        return [r for r in self.results if r.outcome == "ok"]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (no per-request data)."""
        ok = self.ok
        served: dict[str, int] = {}
        for r in ok:
            key = r.served_by or "?"
            served[key] = served.get(key, 0) + 1
        data: dict[str, Any] = {
            "rate": self.rate,
            "duration_s": self.duration,
            "elapsed_s": self.elapsed_s,
            "sent": len(self.results) + self.unfinished,
            "ok": len(ok),
            "shed": self.shed,
            "unfinished": self.unfinished,
            "outcomes": tally(self.results),
            "served_by": dict(sorted(served.items())),
            "latency_ok_ms": summarize([r.latency_ms for r in ok]),
            "latency_all_ms": summarize([r.latency_ms for r in self.results]),
            "send_lag_ms": summarize(self.send_lag_ms),
        }
        ttft = [r.ttft_ms for r in ok if r.ttft_ms is not None]
        if ttft:
            data["ttft_ms"] = summarize(ttft)
            data["ttfb_ms"] = summarize([r.ttfb_ms for r in ok if r.ttfb_ms is not None])
        return data


async def open_loop(
    fire: Fire,
    rate: float,
    duration: float,
    *,
    max_inflight: int = 1000,
    request_timeout: float = 30.0,
) -> LoadRun:
    """Call ``fire(scheduled_time)`` ``rate`` times a second for ``duration`` seconds."""
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    count = round(rate * duration)
    if count > MAX_SENDS or duration > 600:
        raise ValueError(f"refusing an unbounded run: {count} sends over {duration} s")
    run = LoadRun(rate, duration)
    tasks: set[asyncio.Task[None]] = set()
    inflight = 0

    async def one(scheduled: float) -> None:
        nonlocal inflight
        inflight += 1
        try:
            run.results.append(await fire(scheduled))
        finally:
            inflight -= 1

    start = time.perf_counter() + 0.02
    for i in range(count):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        run.send_lag_ms.append((time.perf_counter() - scheduled) * 1000.0)
        if inflight >= max_inflight:
            run.shed += 1
            continue
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        _done, pending = await asyncio.wait(set(tasks), timeout=request_timeout + 5.0)
        for task in pending:
            task.cancel()
        run.unfinished = len(pending)
        if pending:
            await asyncio.wait(pending, timeout=5.0)
    run.elapsed_s = time.perf_counter() - start
    return run
