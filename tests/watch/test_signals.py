"""Signals: outcomes per target over a fast and a slow window."""

from __future__ import annotations

import pytest

from standby.watch.signals import Bucket, Signals, percentile


def test_windows_count_what_happened_in_them() -> None:
    signals = Signals(slow=60.0)
    for second in range(30):  # one success a second for 30 s
        signals.attempt("p/m", "ok", True, 0.2, float(second))
    for second in range(30, 40):  # then 10 s of failures, half of them timeouts
        outcome = "timeout_first_token" if second % 2 else "server_error"
        signals.attempt("p/m", outcome, False, 5.0, float(second))
    fast = signals.stats("p/m", 10.0, 39.5)
    slow = signals.stats("p/m", 60.0, 39.5)
    assert (fast.events, fast.failures, fast.timeouts) == (10, 10, 5)
    assert fast.error_rate == 1.0 and fast.last_ok is None and fast.last_failure == 39.0
    assert (slow.events, slow.failures) == (40, 10)
    assert slow.error_rate == pytest.approx(0.25)
    assert slow.latency_p50 == pytest.approx(0.2) and slow.last_ok == 29.0


def test_old_buckets_fall_out_of_the_window_and_are_reused() -> None:
    signals = Signals(slow=10.0)
    signals.attempt("p/m", "server_error", False, 1.0, 0.0)
    assert signals.stats("p/m", 10.0, 5.0).failures == 1
    assert signals.stats("p/m", 10.0, 11.0).events == 0  # aged out
    signals.attempt("p/m", "ok", True, 1.0, 11.0 + 11.0)  # lands in the reused slot
    assert signals.stats("p/m", 10.0, 22.0).events == 1


def test_latency_and_time_to_first_byte_percentiles() -> None:
    signals = Signals()
    for n in range(1, 101):  # 20 a second, for 5 s
        signals.attempt("p/m", "ok", True, n / 1000.0, 1.0 + n / 20.0)
        signals.first_byte("p/m", n / 10000.0, 1.0 + n / 20.0)
    stats = signals.stats("p/m", 10.0, 6.0)
    assert stats.latency_p50 == pytest.approx(0.050)
    assert stats.ttfb_p99 == pytest.approx(0.0099)
    assert stats.as_dict()["latency_p99_ms"] == 99.0


def test_a_busy_second_keeps_a_bounded_sample() -> None:
    signals = Signals()
    for n in range(1, 1001):  # 1,000 answers within one second
        signals.attempt("p/m", "ok", True, n / 1000.0, 1.0 + n / 2000.0)
    stats = signals.stats("p/m", 10.0, 2.0)
    assert stats.events == 1000
    assert stats.latency_p99 == pytest.approx(0.064)  # the first 64 of the second


@pytest.mark.parametrize(
    ("probes", "failures_in_a_row", "live"),
    [
        ([True], 0, 0),
        ([False], 1, 0),
        ([False, False], 2, 0),
        ([False, True, False], 1, 0),
    ],
)
def test_probes_count_their_failures_in_a_row(
    probes: list[bool], failures_in_a_row: int, live: int
) -> None:
    signals = Signals()
    for n, ok in enumerate(probes):
        signals.attempt("p/m", "ok" if ok else "server_error", ok, 0.1, float(n), probe=True)
    assert signals.probe_failures("p/m") == failures_in_a_row
    assert signals.live_events("p/m", 10.0, float(len(probes))) == live


def test_the_number_of_targets_is_bounded() -> None:
    signals = Signals(max_targets=3)
    for n in range(5):
        signals.attempt(f"p/m{n}", "ok", True, 0.1, 1.0)
    assert signals.keys() == ["p/m2", "p/m3", "p/m4"]
    assert signals.stats("p/m0", 10.0, 1.0).events == 0


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([1.0, 2.0], 0.99) == 2.0


def _second(events: int, failures: int, at: float, latencies: int = 0) -> Bucket:
    """A second as another replica tells it (its times on this clock already)."""
    bucket = Bucket(int(at))
    for n in range(events):
        ok = n >= failures
        bucket.outcome(ok, "ok" if ok else "timeout_idle", 0.5, at + n / 100, False, latencies)
    return bucket


def test_another_replicas_seconds_add_to_the_windows() -> None:
    signals = Signals(slow=60.0)
    signals.attempt("p/m", "ok", True, 0.2, 10.2)
    signals.merge("p/m", _second(4, 3, 10.3, latencies=4), 10.5)
    signals.merge("q/m", _second(2, 2, 11.0), 11.5)  # a target only another replica saw
    fast = signals.stats("p/m", 5.0, 12.0)
    assert (fast.events, fast.failures, fast.timeouts) == (5, 3, 3)
    assert fast.latency_p50 == pytest.approx(0.2) and fast.latency_p99 == pytest.approx(0.5)
    assert signals.first_failure("p/m", 0.0, 12.0) == pytest.approx(10.3)
    assert signals.stats("q/m", 5.0, 12.0).error_rate == 1.0 and "q/m" in signals.keys()
    assert signals.probe_failures("q/m") == 0  # the probes' streak is this replica's own


def test_a_merged_second_keeps_a_bounded_sample_and_an_old_one_is_dropped() -> None:
    signals = Signals(slow=10.0)
    for n in range(100):
        signals.attempt("p/m", "ok", True, 0.1, 20.0 + n / 200)
    for _ in range(5):  # five replicas' busy seconds
        signals.merge("p/m", _second(100, 0, 20.0, latencies=100), 20.5)
    stats = signals.stats("p/m", 5.0, 21.0)
    assert stats.events == 600
    # 64 samples of ours (0.1 s) and as many of theirs (0.5 s), not their 500
    assert stats.latency_p50 == pytest.approx(0.1) and stats.latency_p99 == pytest.approx(0.5)
    signals.merge("p/m", _second(7, 7, 9.0), 9.5)  # older than the slot's second: out
    assert signals.stats("p/m", 10.0, 21.0).failures == 0
