"""The idle deadline of a stream: one timer per stream, not one timeout per chunk.

An ``asyncio.timeout`` around every read of the upstream costs a timer object, a heap
push and a cancellation per chunk (measured: 9-14 % of a stream's CPU).  The watchdog
arms one timer and lets chunks only write down the time: each wait for the upstream
records when it began, and when the timer fires it looks at the wait under way — long
enough, and the waiting task is cancelled (``expired()`` then tells the task the
cancellation was the watchdog's, to be raised as the idle deadline); still short, and
the timer is set again for the rest of it; no wait under way (the task is sending to
the client, which the idle deadline never bounds), and the next wait arms it anew.

So the deadline is exactly ``asyncio.timeout``'s: every single wait for the upstream may
last ``idle`` seconds, measured from its start.  Cancelling follows ``asyncio.timeout``
too (``Task.cancel`` / ``uncancel``), so a cancellation from elsewhere that meets an
expiry is never swallowed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

__all__ = ["IdleWatchdog", "TimerHandle", "Timers"]


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    """A clock with timers, as an asyncio event loop offers (tests pass one they move by
    hand)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> TimerHandle: ...


class IdleWatchdog:
    """Bounds each wait of ``task`` between ``waiting()`` and ``done_waiting()`` to
    ``idle`` seconds; call ``stop()`` when the stream is over."""

    __slots__ = (
        "_cancelling",
        "_expired",
        "_handle",
        "_since",
        "_task",
        "_timers",
        "_waiting",
        "idle",
    )

    def __init__(self, timers: Timers, idle: float, task: asyncio.Task[object]) -> None:
        self.idle = idle
        self._timers = timers
        self._task = task
        self._cancelling = task.cancelling()  # cancellations requested before ours
        self._since = 0.0  # when the wait under way began
        self._waiting = False
        self._expired = False  # we cancelled the task; not yet claimed by expired()
        self._handle: TimerHandle | None = None

    def waiting(self) -> None:
        """A wait for the upstream begins (once per chunk read from the network)."""
        self._since = since = self._timers.time()
        self._waiting = True
        if self._handle is None:
            self._handle = self._timers.call_at(since + self.idle, self._fire)

    def done_waiting(self) -> None:
        self._waiting = False

    def expired(self) -> bool:
        """After a ``CancelledError`` at the wait: was the cancellation the watchdog's
        alone?  Then it is withdrawn and the caller raises the idle deadline instead;
        ``False``: the cancellation came from elsewhere and must propagate."""
        if not self._expired:
            return False
        self._expired = False
        return self._task.uncancel() <= self._cancelling

    def stop(self) -> None:
        self._waiting = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        if not self._waiting:
            return  # between waits: the next one arms the timer
        deadline = self._since + self.idle
        if self._timers.time() < deadline:
            self._handle = self._timers.call_at(deadline, self._fire)
            return
        self._waiting = False
        self._expired = True
        self._task.cancel()

    def __repr__(self) -> str:
        state = "waiting" if self._waiting else "expired" if self._expired else "idle"
        return f"<IdleWatchdog {self.idle:g}s {state} armed={self._handle is not None}>"
