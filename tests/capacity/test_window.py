"""The pure counting behind every limit: a sliding log of units and buckets of amounts."""

from __future__ import annotations

import pytest

from standby.capacity.window import Buckets, SlidingLog


@pytest.mark.parametrize(
    ("times", "cap", "now", "granted", "used", "retry_after"),
    [
        ([], 3, 0.0, True, 1, 0.0),
        ([0.0, 1.0], 3, 2.0, True, 3, 0.0),
        # full: the oldest unit leaves at 0 + 60
        ([0.0, 1.0, 2.0], 3, 3.0, False, 3, 57.0),
        # a unit exactly one span old has left the window
        ([0.0, 1.0, 2.0], 3, 60.0, True, 3, 0.0),
        # a lower cap (a low-priority share): two units must leave, the second at 61
        ([0.0, 1.0, 2.0], 2, 3.0, False, 3, 58.0),
        # a cap of nothing never fits: wait a whole span
        ([], 0, 5.0, False, 0, 60.0),
    ],
)
def test_a_sliding_log_grants_while_the_last_minute_is_under_the_cap(
    times: list[float], cap: int, now: float, granted: bool, used: int, retry_after: float
) -> None:
    log = SlidingLog(60.0)
    for at in times:
        assert log.take(100, at).granted
    grant = log.take(cap, now)
    assert (grant.granted, grant.used) == (granted, used)
    assert grant.retry_after == pytest.approx(retry_after)


def test_no_sliding_minute_ever_holds_more_than_the_cap() -> None:
    log, cap, granted = SlidingLog(60.0), 10, []
    for tenth in range(0, 3000):  # 5 minutes, an ask every 0.1 s
        now = tenth / 10
        if log.take(cap, now).granted:
            granted.append(now)
    assert max(sum(1 for t in granted if start <= t < start + 60.0) for start in granted) == cap
    assert len(granted) == 50  # 10 per minute, no more, no less


def test_a_refusal_says_when_the_ask_fits() -> None:
    log = SlidingLog(60.0)
    for at in (0.0, 10.0):
        log.take(2, at)
    refused = log.take(2, 20.0)
    assert not refused.granted
    assert log.take(2, 20.0 + refused.retry_after).granted


@pytest.mark.parametrize(
    ("adds", "cap", "now", "granted", "used", "retry_after"),
    [
        ([], 100, 0.0, True, 0, 0.0),
        ([(50, 0.5), (40, 1.5)], 100, 2.0, True, 90, 0.0),
        # at the cap: the first bucket (second 0) leaves at 60
        ([(50, 0.5), (60, 1.5)], 100, 2.0, False, 110, 58.0),
        # both must go before it is under the cap: the second leaves at 61
        ([(50, 0.5), (60, 1.5)], 50, 2.0, False, 110, 59.0),
        # amounts older than the span are gone
        ([(500, 0.5)], 100, 60.0, True, 0, 0.0),
    ],
)
def test_buckets_are_a_budget_over_the_last_span(
    adds: list[tuple[int, float]],
    cap: int,
    now: float,
    granted: bool,
    used: int,
    retry_after: float,
) -> None:
    buckets = Buckets(60.0, 1.0)
    for amount, at in adds:
        buckets.add(amount, at)
    grant = buckets.check(cap, now)
    assert (grant.granted, grant.used) == (granted, used)
    assert grant.retry_after == pytest.approx(retry_after)
