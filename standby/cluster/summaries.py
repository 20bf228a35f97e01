"""A replica's outcomes, a second at a time, for the others' signals.

Incidents are detected by one replica (the lease holder), from ``watch.signals``.  Alone,
it would judge only the traffic the balancer sends it — and a replica sent nothing would
notice nothing.  So each replica sums up each second of its own outcomes per target
(events, failures, timeouts, probes, a few latency and first-byte samples, the moments of
the last success and of the first and last failure) and tells the others once the second
is over; each replica adds the others' seconds to its signals (``Signals.merge``).  The
leader then judges the whole cluster's traffic, and a replica that takes the lease over
starts with the same windows.

``Summaries`` is pure: ``note`` and ``first_byte`` from the gate's observer (wall-clock
times), ``drain`` once a second; ``encode`` / ``decode`` are the JSON of one target's
second, ``decode`` moving its times onto the receiver's clock.  Bounded: ``keep`` seconds
at most (older ones, never drained because Redis is away, are dropped), ``max_targets``
targets per second, ``samples`` latencies per target and second.
"""

from __future__ import annotations

from typing import Any

from standby.watch.signals import Bucket

SAMPLES = 16  # latencies (and times to first byte) told per target and second
KEEP = 3  # seconds kept undrained at most


class Summaries:
    """This replica's outcomes per wall-clock second and target, until told."""

    def __init__(
        self, *, samples: int = SAMPLES, keep: int = KEEP, max_targets: int = 2048
    ) -> None:
        self._samples = samples
        self._keep = keep
        self._max_targets = max_targets
        self._seconds: dict[int, dict[str, Bucket]] = {}

    def _bucket(self, key: str, at: float) -> Bucket | None:
        number = int(at)
        second = self._seconds.get(number)
        if second is None:
            for old in [n for n in self._seconds if n <= number - self._keep]:
                del self._seconds[old]
            second = self._seconds[number] = {}
        bucket = second.get(key)
        if bucket is None:
            if len(second) >= self._max_targets:
                return None
            bucket = second[key] = Bucket(number)
        return bucket

    def note(
        self, key: str, outcome: str, ok: bool, seconds: float, at: float, probe: bool
    ) -> None:
        """An attempt of this replica on ``key`` ended at ``at`` (wall clock)."""
        bucket = self._bucket(key, at)
        if bucket is not None:
            bucket.outcome(ok, outcome, seconds, at, probe, self._samples)

    def first_byte(self, key: str, seconds: float, at: float) -> None:
        bucket = self._bucket(key, at)
        if bucket is not None:
            bucket.first_byte(seconds, self._samples)

    def drain(self, now: float) -> list[tuple[int, dict[str, Bucket]]]:
        """The seconds that are over at ``now`` (wall clock), oldest first; forgotten here."""
        current = int(now)
        done = sorted(n for n in self._seconds if n < current)
        return [(n, self._seconds.pop(n)) for n in done]

    def __repr__(self) -> str:
        return f"<Summaries seconds={sorted(self._seconds)}>"


def encode(bucket: Bucket) -> dict[str, Any]:
    """One target's second as JSON (wall-clock times)."""
    return {
        "events": bucket.events,
        "failures": bucket.failures,
        "timeouts": bucket.timeouts,
        "probes": bucket.probes,
        "latencies": [round(x, 6) for x in bucket.latencies],
        "ttfbs": [round(x, 6) for x in bucket.ttfbs],
        "last_ok": bucket.last_ok,
        "first_failure": bucket.first_failure,
        "last_failure": bucket.last_failure,
    }


def decode(data: dict[str, Any], number: int, shift: float, samples: int = SAMPLES) -> Bucket:
    """``encode``'s JSON back, its times moved by ``shift`` (the receiver's clock minus
    the wall clock).  ``ValueError`` / ``TypeError`` / ``KeyError`` for a malformed one."""
    bucket = Bucket(number)
    bucket.events = _count(data["events"])
    bucket.failures = min(_count(data["failures"]), bucket.events)
    bucket.timeouts = min(_count(data["timeouts"]), bucket.failures)
    bucket.probes = min(_count(data["probes"]), bucket.events)
    bucket.latencies = [float(x) for x in data["latencies"][:samples]]
    bucket.ttfbs = [float(x) for x in data["ttfbs"][:samples]]
    bucket.last_ok = _moved(data["last_ok"], shift)
    bucket.first_failure = _moved(data["first_failure"], shift)
    bucket.last_failure = _moved(data["last_failure"], shift)
    return bucket


def _count(value: Any) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(f"a negative count: {number}")
    return number


def _moved(value: Any, shift: float) -> float | None:
    return None if value is None else float(value) + shift
