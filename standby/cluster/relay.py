"""The gate's observer on a replica of a cluster: every attempt's outcome goes to the
local signals as before, and is noted for the other replicas — its failure (or the
success that ends a run of them) for their breakers (``failures``), and its second's
summary for their signals (``summaries``).

Noting is a few dictionary operations on the event loop; nothing here waits or talks to
Redis: ``cluster.health`` publishes what is noted, from tasks of its own.  ``news`` is
set when there is a failure (or a reset) to tell, so it is told within milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from standby.cluster.failures import FailureTally
from standby.cluster.summaries import Summaries
from standby.health.gate import Observer


class Relay:
    """An ``Observer`` in front of ``local`` (the process's ``Signals``, or none)."""

    def __init__(
        self,
        local: Observer | None,
        *,
        failures: FailureTally | None = None,
        summaries: Summaries | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.local = local
        self.failures = failures if failures is not None else FailureTally()
        self.summaries = summaries if summaries is not None else Summaries()
        self.wall = wall
        self.news = asyncio.Event()  # a failure or a reset waits to be told

    def attempt(
        self, key: str, outcome: str, ok: bool, seconds: float, now: float, *, probe: bool = False
    ) -> None:
        if self.local is not None:
            self.local.attempt(key, outcome, ok, seconds, now, probe=probe)
        self.summaries.note(key, outcome, ok, seconds, self.wall(), probe)
        if not ok:
            self.failures.failed(key)
            self.news.set()
        elif self.failures.succeeded(key):
            self.news.set()

    def first_byte(self, key: str, seconds: float, now: float) -> None:
        if self.local is not None:
            self.local.first_byte(key, seconds, now)
        self.summaries.first_byte(key, seconds, self.wall())
