"""PollSchedule: a jittered interval, exponential backoff after errors, reset on
success; driven with plain numbers."""

from __future__ import annotations

import random

import pytest

from standby.watch.official import PollSchedule


def test_the_first_poll_is_due_at_once() -> None:
    schedule = PollSchedule(60.0, random.Random(1), now=100.0)
    assert schedule.due(100.0) and schedule.wait(100.0) == 0.0 and schedule.next_at == 100.0


def test_successes_keep_to_the_interval_within_the_jitter() -> None:
    schedule = PollSchedule(60.0, random.Random(7), now=0.0)
    now, gaps = 0.0, []
    for _ in range(500):
        after = schedule.succeeded(now)
        gaps.append(after - now)
        assert not schedule.due(now) and schedule.due(after)
        assert schedule.wait(now) == pytest.approx(after - now)
        now = after
    assert min(gaps) >= 54.0 and max(gaps) <= 66.0
    assert min(gaps) < 55.0 and max(gaps) > 65.0  # the whole ±10 % is used
    assert len(set(gaps)) > 400  # jittered, not one fixed period


def test_the_same_seed_gives_the_same_times() -> None:
    first, second = (PollSchedule(30.0, random.Random(42)) for _ in range(2))
    assert [first.succeeded(t) for t in range(5)] == [second.succeeded(t) for t in range(5)]


def test_errors_back_off_exponentially_up_to_ten_intervals() -> None:
    rng = random.Random(3)
    mirror = random.Random(3)  # draws the same factors, to say exactly what is expected
    schedule = PollSchedule(60.0, rng, now=0.0)
    waits = []
    for errors in range(1, 8):
        waits.append(schedule.failed(1000.0) - 1000.0)
        expected = min(60.0 * 2**errors * mirror.uniform(0.9, 1.1), 600.0)
        assert waits[-1] == pytest.approx(expected)
        assert schedule.errors == errors
    assert waits[0] == pytest.approx(120.0, rel=0.1) and waits[1] == pytest.approx(240.0, rel=0.1)
    assert waits[-1] == 600.0 and max(waits) == 600.0  # capped at 10 x interval


def test_a_success_resets_the_backoff() -> None:
    schedule = PollSchedule(10.0, random.Random(5))
    for _ in range(6):
        schedule.failed(0.0)
    assert schedule.next_at == 100.0
    after = schedule.succeeded(0.0)
    assert schedule.errors == 0 and 9.0 <= after <= 11.0
    assert 18.0 <= schedule.failed(0.0) <= 22.0  # backoff starts over at 2 x


def test_endless_errors_stay_bounded() -> None:
    schedule = PollSchedule(1.0, random.Random(0))
    for _ in range(5000):
        schedule.failed(0.0)
    assert schedule.next_at == 10.0 and schedule.errors == 5000


def test_repr_says_where_it_stands() -> None:
    schedule = PollSchedule(60.0, random.Random(0), now=5.0)
    schedule.failed(5.0)
    assert repr(schedule).startswith("<PollSchedule interval=60 next_at=")
    assert repr(schedule).endswith("errors=1>")


def test_a_zero_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        PollSchedule(0.0, random.Random(0))
