"""How much of a limit the last minute has used: the pure counting behind every limit.

``SlidingLog`` keeps one entry per unit granted (a request sent to a target, a request of
a client) and answers exactly: a unit is granted when fewer than ``cap`` units fall in the
last ``span`` seconds, so no sliding window of ``span`` ever holds more than the limit —
the same rule a provider's own limiter applies.  When it refuses, it says when the
oldest units will have left the window (the Retry-After).

``Buckets`` counts amounts (tokens) in ``width``-second buckets over ``span``: tokens are
known only after an answer, so their limit is a budget checked before a request, not a
reservation, and its precision is one bucket.

Both are pure: the caller passes ``now`` (seconds, any clock it keeps to).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Grant:
    """The answer to one ask: granted or not, how much of the window is used (after the
    grant), and, when refused, how long until the ask would fit."""

    granted: bool
    used: int
    retry_after: float = 0.0


class SlidingLog:
    """Units granted over the last ``span`` seconds, one timestamp each (kept sorted).

    A unit may be dated ahead (``hold``): a block of units taken now to be spent within
    ``hold`` seconds is counted as if each were spent at the block's last moment, so it
    stays in the window at least as long as the request it stands for — never less.
    """

    __slots__ = ("_times", "span")

    def __init__(self, span: float = 60.0) -> None:
        self.span = span
        self._times: list[float] = []

    def _expire(self, now: float) -> None:
        gone = bisect.bisect_right(self._times, now - self.span)
        if gone:
            del self._times[:gone]

    def used(self, now: float) -> int:
        self._expire(now)
        return len(self._times)

    def take(self, cap: int, now: float, *, want: int = 1, hold: float = 0.0) -> Grant:
        """``want`` units if they fit under ``cap`` in the window; else none, and, for one
        unit, when it would fit."""
        self._expire(now)
        used = len(self._times)
        if used + want <= cap:
            for _ in range(want):
                bisect.insort(self._times, now + hold)
            return Grant(True, used + want)
        if want > 1 or cap <= 0:
            return Grant(False, used, self.span if cap <= 0 else 0.0)
        # the window must lose ``used - cap + 1`` units: the one at that rank leaves last
        return Grant(False, used, max(0.0, self._times[used - cap] + self.span - now))


class Buckets:
    """Amounts over the last ``span`` seconds, summed per ``width``-second bucket."""

    __slots__ = ("_buckets", "span", "width")

    def __init__(self, span: float = 60.0, width: float = 1.0) -> None:
        self.span = span
        self.width = width
        self._buckets: deque[tuple[int, int]] = deque()  # (bucket number, amount)

    def _expire(self, now: float) -> None:
        first = math.floor((now - self.span) / self.width) + 1  # the oldest bucket kept
        buckets = self._buckets
        while buckets and buckets[0][0] < first:
            buckets.popleft()

    def add(self, amount: int, now: float) -> None:
        number = math.floor(now / self.width)
        if self._buckets and self._buckets[-1][0] == number:
            self._buckets[-1] = (number, self._buckets[-1][1] + amount)
        else:
            self._buckets.append((number, amount))
        self._expire(now)

    def used(self, now: float) -> int:
        self._expire(now)
        return sum(amount for _, amount in self._buckets)

    def check(self, cap: int, now: float) -> Grant:
        """Whether the window is under ``cap``; else when enough will have left it."""
        self._expire(now)
        used = sum(amount for _, amount in self._buckets)
        if used < cap:
            return Grant(True, used)
        over, wait = used - cap, self.span
        for number, amount in self._buckets:  # oldest first: when do enough leave?
            over -= amount
            if over < 0:
                wait = number * self.width + self.span - now  # when that bucket leaves
                break
        return Grant(False, used, max(0.0, wait))
