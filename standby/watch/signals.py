"""Signals: what the recent attempts on each target say, over a fast and a slow window.

Every attempt that reached a provider — a live request's or a probe's — is one outcome:
ok or failed (with its kind: ``timeout_first_token``, ``server_error``, ``rate_limited``…)
and how long it took; a first byte adds a time to first byte.  ``Signals`` keeps them per
target in one-second buckets covering the slow window and answers ``stats(key, span,
now)``: events, failures, timeouts, error rate, latency p50/p99 and time-to-first-byte
p50/p99 over the last ``span`` seconds.  Latencies are kept as a bounded sample per
bucket (the first ``samples`` of each second), so memory is bounded whatever the load.

``Signals`` is what ``health.gate.RegistryGate`` reports to (its ``Observer``), and what
the probes report to; the incident detector reads it.  Replicas of one gateway tell each
other their outcomes a second at a time (``cluster.summaries``), and each adds the
others' seconds to its own (``merge``): the replica that detects incidents judges the
whole cluster's traffic, not only its own share of it.  Pure: the caller passes ``now``
(seconds on a monotonic clock).  Use from one event loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_TIMEOUTS = frozenset({"timeout_first_token", "timeout_idle", "timeout_connect", "silent"})


@dataclass(frozen=True, slots=True)
class WindowStats:
    """One target's outcomes over one window."""

    span: float
    events: int
    failures: int
    timeouts: int
    probes: int  # of the events, how many were probes
    latency_p50: float | None
    latency_p99: float | None
    ttfb_p50: float | None
    ttfb_p99: float | None
    last_ok: float | None  # when the last success in the window happened
    last_failure: float | None

    @property
    def error_rate(self) -> float:
        return self.failures / self.events if self.events else 0.0

    def as_dict(self) -> dict[str, float | int | None]:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000.0, 1)

        return {
            "span_s": self.span,
            "events": self.events,
            "failures": self.failures,
            "timeouts": self.timeouts,
            "probes": self.probes,
            "error_rate": round(self.error_rate, 4),
            "latency_p50_ms": ms(self.latency_p50),
            "latency_p99_ms": ms(self.latency_p99),
            "ttfb_p50_ms": ms(self.ttfb_p50),
            "ttfb_p99_ms": ms(self.ttfb_p99),
        }


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ``values`` (sorted here), None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


class Bucket:
    """One target's outcomes over one second: the unit the windows are made of, and what
    a replica tells the others of each second.  Times are on the clock of whoever keeps it."""

    __slots__ = (
        "events",
        "failures",
        "first_failure",
        "last_failure",
        "last_ok",
        "latencies",
        "number",
        "probes",
        "timeouts",
        "ttfbs",
    )

    def __init__(self, number: int) -> None:
        self.number = number
        self.events = self.failures = self.timeouts = self.probes = 0
        self.latencies: list[float] = []
        self.ttfbs: list[float] = []
        self.last_ok: float | None = None
        self.first_failure: float | None = None
        self.last_failure: float | None = None

    def outcome(
        self, ok: bool, outcome: str, seconds: float, now: float, probe: bool, samples: int
    ) -> None:
        """One attempt's outcome; its latency kept while the sample has room."""
        self.events += 1
        if probe:
            self.probes += 1
        if ok:
            self.last_ok = now
            if len(self.latencies) < samples:
                self.latencies.append(seconds)
        else:
            self.failures += 1
            if self.first_failure is None:
                self.first_failure = now
            self.last_failure = now
            if outcome in _TIMEOUTS or outcome.startswith("timeout"):
                self.timeouts += 1

    def first_byte(self, seconds: float, samples: int) -> None:
        if len(self.ttfbs) < samples:
            self.ttfbs.append(seconds)

    def merge(self, other: Bucket, samples: int) -> None:
        """Add ``other``'s outcomes (another replica's, of the same second, on this
        bucket's clock); the samples grow to ``samples`` at most."""
        self.events += other.events
        self.failures += other.failures
        self.timeouts += other.timeouts
        self.probes += other.probes
        self.latencies.extend(other.latencies[: max(0, samples - len(self.latencies))])
        self.ttfbs.extend(other.ttfbs[: max(0, samples - len(self.ttfbs))])
        self.last_ok = _latest(self.last_ok, other.last_ok)
        self.last_failure = _latest(self.last_failure, other.last_failure)
        if other.first_failure is not None and (
            self.first_failure is None or other.first_failure < self.first_failure
        ):
            self.first_failure = other.first_failure

    def __repr__(self) -> str:
        return f"<Bucket {self.number} events={self.events} failures={self.failures}>"


def _latest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


class Series:
    """One target's buckets: ``slots`` one-second buckets, reused in a ring."""

    __slots__ = ("_buckets", "_samples", "_width", "probe_failures", "probe_ok")

    def __init__(self, span: float, *, width: float = 1.0, samples: int = 64) -> None:
        self._width = width
        self._samples = samples
        self._buckets: list[Bucket | None] = [None] * (math.ceil(span / width) + 1)
        self.probe_failures = 0  # probes failed in a row, since the last probe success
        self.probe_ok: float | None = None  # when the last probe succeeded

    def _bucket(self, now: float) -> Bucket:
        number = int(now // self._width)
        slot = number % len(self._buckets)
        bucket = self._buckets[slot]
        if bucket is None or bucket.number != number:
            bucket = self._buckets[slot] = Bucket(number)
        return bucket

    def outcome(self, ok: bool, outcome: str, seconds: float, now: float, probe: bool) -> None:
        self._bucket(now).outcome(ok, outcome, seconds, now, probe, self._samples)
        if probe:
            if ok:
                self.probe_failures, self.probe_ok = 0, now
            else:
                self.probe_failures += 1

    def first_byte(self, seconds: float, now: float) -> None:
        self._bucket(now).first_byte(seconds, self._samples)

    def merge(self, other: Bucket, at: float) -> None:
        """Another replica's outcomes of the second around ``at`` (its times already on
        this clock): added to that second, with room for as many samples again as ours.
        A second older than the one its slot holds now is out of the window: dropped."""
        held = self._buckets[int(at // self._width) % len(self._buckets)]
        if held is not None and held.number > int(at // self._width):
            return
        self._bucket(at).merge(other, 2 * self._samples)

    def first_failure(self, since: float, now: float) -> float | None:
        """The earliest failure at or after ``since`` still held (None: none).  Within a
        bucket that began before ``since``, ``since`` itself stands for its failures."""
        newest = int(now // self._width)
        oldest = newest - len(self._buckets) + 1
        found: float | None = None
        for bucket in self._buckets:
            if bucket is None or not oldest <= bucket.number <= newest:
                continue
            if bucket.first_failure is None or bucket.last_failure is None:
                continue
            if bucket.last_failure < since:
                continue
            moment = max(bucket.first_failure, since)
            found = moment if found is None else min(found, moment)
        return found

    def stats(self, span: float, now: float) -> WindowStats:
        newest = int(now // self._width)
        oldest = newest - max(1, math.ceil(span / self._width)) + 1
        events = failures = timeouts = probes = 0
        latencies: list[float] = []
        ttfbs: list[float] = []
        last_ok: float | None = None
        last_failure: float | None = None
        for bucket in self._buckets:
            if bucket is None or not oldest <= bucket.number <= newest:
                continue
            events += bucket.events
            failures += bucket.failures
            timeouts += bucket.timeouts
            probes += bucket.probes
            latencies.extend(bucket.latencies)
            ttfbs.extend(bucket.ttfbs)
            if bucket.last_ok is not None and (last_ok is None or bucket.last_ok > last_ok):
                last_ok = bucket.last_ok
            if bucket.last_failure is not None and (
                last_failure is None or bucket.last_failure > last_failure
            ):
                last_failure = bucket.last_failure
        return WindowStats(
            span=span,
            events=events,
            failures=failures,
            timeouts=timeouts,
            probes=probes,
            latency_p50=percentile(latencies, 0.5),
            latency_p99=percentile(latencies, 0.99),
            ttfb_p50=percentile(ttfbs, 0.5),
            ttfb_p99=percentile(ttfbs, 0.99),
            last_ok=last_ok,
            last_failure=last_failure,
        )


class Signals:
    """Per target (``provider/model``) outcome series over ``slow`` seconds.

    Bounded: past ``max_targets`` series, the least recently used is forgotten.
    """

    def __init__(self, *, slow: float = 120.0, max_targets: int = 2048) -> None:
        self.slow = slow
        self._max_targets = max_targets
        self._series: dict[str, Series] = {}

    def _series_of(self, key: str) -> Series:
        series = self._series.pop(key, None)
        if series is None:
            if len(self._series) >= self._max_targets:
                del self._series[next(iter(self._series))]
            series = Series(self.slow)
        self._series[key] = series  # most recently used last
        return series

    # -- the gate's Observer, and the probes' ---------------------------------------------
    def attempt(
        self, key: str, outcome: str, ok: bool, seconds: float, now: float, *, probe: bool = False
    ) -> None:
        """An attempt on ``key`` ended: ``ok`` or failed as ``outcome``, after ``seconds``."""
        self._series_of(key).outcome(ok, outcome, seconds, now, probe)

    def first_byte(self, key: str, seconds: float, now: float) -> None:
        """An attempt on ``key`` got its first byte ``seconds`` after it started."""
        self._series_of(key).first_byte(seconds, now)

    # -- the other replicas' ------------------------------------------------------------------
    def merge(self, key: str, bucket: Bucket, at: float) -> None:
        """Another replica's outcomes on ``key`` during the second around ``at`` (times on
        this clock).  Its probes count as events, not in this replica's probe streak."""
        self._series_of(key).merge(bucket, at)

    # -- reading ----------------------------------------------------------------------------
    def keys(self) -> list[str]:
        return list(self._series)

    def stats(self, key: str, span: float, now: float) -> WindowStats:
        series = self._series.get(key)
        if series is None:
            return Series(span).stats(span, now)
        return series.stats(min(span, self.slow), now)

    def first_failure(self, key: str, since: float, now: float) -> float | None:
        """The earliest failure of ``key`` at or after ``since`` (the start of an outage)."""
        series = self._series.get(key)
        return series.first_failure(since, now) if series is not None else None

    def probe_failures(self, key: str) -> int:
        """Probes of ``key`` failed in a row since its last probe success."""
        series = self._series.get(key)
        return series.probe_failures if series is not None else 0

    def live_events(self, key: str, span: float, now: float) -> int:
        """Outcomes of live requests (not probes) on ``key`` over the last ``span`` s."""
        found = self.stats(key, span, now)
        return found.events - found.probes
