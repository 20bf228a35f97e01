"""The report's figures, folded from request facts (pure): each rule of what counts,
one row of facts at a time, and the moments the timings are measured from."""

from __future__ import annotations

from dataclasses import replace

import pytest

from standby.reports.figures import Folded, fold, percentile
from standby.reports.requests import Fact, Try, tries

PRIMARY, BACKUP = "openai/gpt-4o-mini", "anthropic/claude-3-5-haiku"
PRIMARIES = {"chat": frozenset({PRIMARY})}
PRICES = {PRIMARY: (0.15, 0.60), BACKUP: (0.80, 4.00)}


def req(
    at: float = 100.0,
    *,
    state: str = "completed",
    target: str = PRIMARY,
    took: float = 1.0,
    status: int | None = 200,
    stream: bool = False,
    tried: tuple[Try, ...] | None = None,
    deferred: bool = False,
    client: str = "app",
    route: str = "chat",
) -> Fact:
    return Fact(
        rid=f"req_{at}",
        received_at=at,
        finished_at=at + took,
        route=route,
        client=client,
        stream=stream,
        state=state,
        status=status,
        target=target,
        prompt_tokens=1000,
        completion_tokens=100,
        tries=tried if tried is not None else (Try(target, "ok", took),),
        deferred=deferred,
    )


FAILOVER = (Try(PRIMARY, "unavailable", 0.2), Try(BACKUP, "ok", 0.8))
SKIPPED = (Try(PRIMARY, "skipped_open", 0.0), Try(BACKUP, "ok", 0.8))
CUT = (Try(PRIMARY, "stream_broken", 0.5, mid_answer=True), Try(BACKUP, "ok", 0.5))
EARLY_CUT = (Try(PRIMARY, "timeout_first_token", 1.0), Try(BACKUP, "ok", 0.5))
BOTH_DOWN = (Try(PRIMARY, "unavailable", 0.1), Try(BACKUP, "unavailable", 0.1))


def folded(*facts: Fact, baseline: tuple[float, ...] = ()) -> Folded:
    return fold(
        facts,
        primaries=PRIMARIES,
        prices=PRICES,
        baseline_seconds=baseline,
        start=0.0,
        end=600.0,
        bucket=60.0,
    )


@pytest.mark.parametrize(
    ("fact", "expected"),
    [
        (req(), {"answered": 1, "answered_by_primary": 1, "failed_over": 0}),
        (
            req(target=BACKUP, tried=FAILOVER),
            {"answered_by_fallback": 1, "failed_over": 1, "answered_by_primary": 0},
        ),
        # a breaker already open: served by the fallback without a failed try
        (req(target=BACKUP, tried=SKIPPED), {"answered_by_fallback": 1, "failed_over": 0}),
        (
            req(target=BACKUP, tried=CUT, stream=True),
            {"streams": 1, "streams_continued": 1, "failed_over": 1},
        ),
        # failed over before any content reached the caller: not a continued stream
        (req(target=BACKUP, tried=EARLY_CUT, stream=True), {"streams": 1, "streams_continued": 0}),
        (
            req(state="failed", target=BACKUP, status=503, tried=BOTH_DOWN),
            {"failed": 1, "failed_by_class": {"unavailable": 1}, "answered": 0},
        ),
        # the caller's own mistake: counted apart, never a failure
        (
            req(state="failed", status=400, tried=(Try(PRIMARY, "invalid_request", 0.1),)),
            {"client_errors": 1, "failed": 0},
        ),
        (req(state="failed", status=429, tried=BOTH_DOWN), {"failed": 1, "client_errors": 0}),
        (req(deferred=True, took=300.0), {"deferred": 1, "deferred_completed": 1}),
        (
            req(state="deferred", deferred=True, status=None, tried=BOTH_DOWN),
            {"deferred": 1, "deferred_completed": 0, "failed": 0},
        ),
        (req(state="client_gone", status=None, stream=True), {"client_gone": 1, "answered": 0}),
        (
            req(state="interrupted", status=None, tried=()),
            {"failed": 1, "failed_by_class": {"interrupted": 1}},
        ),
    ],
    ids=[
        "primary",
        "failed over",
        "breaker open",
        "continued",
        "failed over before content",
        "failed",
        "client error",
        "429 is not the caller's",
        "deferred",
        "deferred, pending",
        "client gone",
        "interrupted",
    ],
)
def test_what_each_request_counts_for(fact: Fact, expected: dict[str, object]) -> None:
    impact = folded(fact).impact
    assert impact.requests == 1
    for name, value in expected.items():
        assert getattr(impact, name) == value, name


def test_latency_leaves_out_deferred_requests_and_compares_with_the_baseline() -> None:
    facts = [req(at=float(i), took=1.0) for i in range(99)] + [req(at=99.0, took=5.0)]
    facts.append(req(at=100.0, took=3600.0, deferred=True))
    impact = folded(*facts, baseline=tuple([0.5] * 100)).impact
    assert impact.latency.p50_ms == 1000.0 and impact.latency.p99_ms == 1000.0
    assert impact.baseline.p50_ms == 500.0
    assert impact.added.p50_ms == 500.0


def test_tokens_and_cost_by_target_and_what_the_fallback_cost_more() -> None:
    impact = folded(req(), req(at=200.0, target=BACKUP, tried=FAILOVER)).impact
    by = {t.target: t for t in impact.targets}
    assert by[PRIMARY].role == "primary" and by[BACKUP].role == "fallback"
    assert by[PRIMARY].cost == pytest.approx((1000 * 0.15 + 100 * 0.60) / 1e6)
    assert by[BACKUP].cost == pytest.approx((1000 * 0.80 + 100 * 4.00) / 1e6)
    assert impact.cost == pytest.approx(by[PRIMARY].cost + by[BACKUP].cost)
    # the backup's tokens on the primary would have cost the primary's price
    assert impact.cost_delta == pytest.approx(by[BACKUP].cost - by[PRIMARY].cost)
    unpriced = fold(
        [req(target="x/y", tried=(Try("x/y", "ok", 1.0),))],
        primaries=PRIMARIES,
        prices=PRICES,
        baseline_seconds=(),
        start=0.0,
        end=600.0,
        bucket=60.0,
    ).impact
    assert unpriced.cost is None and unpriced.targets[0].cost is None


def test_clients_most_failed_first() -> None:
    impact = folded(
        req(client="batch"),
        req(at=101.0, client="checkout", state="failed", status=503, tried=BOTH_DOWN),
        req(at=102.0, client="checkout", target=BACKUP, tried=FAILOVER),
    ).impact
    assert [(c.client, c.requests, c.failed, c.failed_over) for c in impact.clients] == [
        ("checkout", 2, 1, 1),
        ("batch", 1, 0, 0),
    ]


def test_the_series_buckets_requests_failures_and_who_served() -> None:
    series = folded(
        req(at=10.0),
        req(at=70.0, target=BACKUP, tried=FAILOVER),
        req(at=75.0, state="failed", status=503, tried=BOTH_DOWN),
        req(at=599.0),
    ).series
    assert len(series) == 10 and [b.at for b in series[:2]] == [0.0, 60.0]
    assert (series[0].requests, series[0].served_by) == (1, {PRIMARY: 1})
    assert (series[1].requests, series[1].failed, series[1].served_by) == (2, 1, {BACKUP: 1})
    assert series[9].requests == 1 and series[5].p50_ms is None


def test_the_moments_of_failure_failover_and_recovery() -> None:
    moments = folded(
        req(at=10.0),
        req(at=100.0, target=BACKUP, tried=FAILOVER, took=1.0),
        req(at=200.0, target=BACKUP, tried=FAILOVER, took=1.0),
        req(at=300.0, took=2.0),
    ).moments
    assert moments.first_failure == pytest.approx(100.2)  # the failed try's end
    assert moments.first_fallback_answer == pytest.approx(101.0)
    assert moments.last_primary_failure == pytest.approx(200.2)
    assert moments.primary_back == pytest.approx(302.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[["a/m", "ok", 1.5]]', (Try("a/m", "ok", 1.5),)),
        (
            '[["a/m", "stream_broken", 0.5, "mid_answer"], ["b/m", "ok", 1]]',
            (Try("a/m", "stream_broken", 0.5, True), Try("b/m", "ok", 1.0)),
        ),
        (None, ()),
        ("not json", ()),
        ('{"a": 1}', ()),
        ('[["short"]]', ()),
    ],
)
def test_the_journals_attempts_are_read_as_tries(
    text: str | None, expected: tuple[Try, ...]
) -> None:
    assert tries(text) == expected


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0,
        99.0,
        100.0,
    )
    assert percentile([], 50) is None and percentile([7.0], 99) == 7.0
    assert replace(req(), status=404).client_error
