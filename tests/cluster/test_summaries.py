"""A replica's seconds of outcomes, for the others' signals: noted, drained once over,
bounded, and through JSON onto another clock; and the relay that notes them."""

from __future__ import annotations

import orjson
import pytest

from standby.cluster.relay import Relay
from standby.cluster.summaries import Summaries, decode, encode
from standby.watch.signals import Bucket, Signals


def test_a_second_is_told_once_it_is_over() -> None:
    summaries = Summaries(samples=2)
    summaries.note("p/m", "ok", True, 0.3, 100.1, False)
    summaries.note("p/m", "server_error", False, 1.0, 100.4, False)
    summaries.note("p/m", "ok", True, 0.2, 100.6, True)
    summaries.note("p/m", "ok", True, 0.9, 100.7, False)  # a third sample: not kept
    summaries.first_byte("p/m", 0.05, 100.2)
    summaries.note("p/m", "timeout_idle", False, 5.0, 101.2, False)
    assert summaries.drain(100.99) == []
    [(number, targets)] = summaries.drain(101.5)
    assert number == 100 and list(targets) == ["p/m"]
    bucket = targets["p/m"]
    assert (bucket.events, bucket.failures, bucket.probes, bucket.timeouts) == (4, 1, 1, 0)
    assert bucket.latencies == [0.3, 0.2] and bucket.ttfbs == [0.05]
    assert (bucket.last_ok, bucket.first_failure) == (100.7, 100.4)
    [(later, _)] = summaries.drain(102.0)
    assert later == 101 and summaries.drain(103.0) == []


def test_undrained_seconds_and_targets_are_bounded() -> None:
    summaries = Summaries(keep=2, max_targets=2)
    for second in range(10):  # Redis away: nobody drains
        for key in ("a", "b", "c"):
            summaries.note(key, "ok", True, 0.1, second + 0.5, False)
    assert repr(summaries) == "<Summaries seconds=[8, 9]>"
    assert [sorted(t) for _, t in summaries.drain(10.0)] == [["a", "b"], ["a", "b"]]


def test_through_json_onto_the_receivers_clock() -> None:
    summaries = Summaries()
    summaries.note("p/m", "server_error", False, 1.0, 1_700_000_000.25, False)
    summaries.note("p/m", "ok", True, 0.4, 1_700_000_000.75, False)
    [(number, targets)] = summaries.drain(1_700_000_001.1)
    wire = orjson.loads(orjson.dumps(encode(targets["p/m"])))
    bucket = decode(wire, number, shift=-1_699_999_000.0)  # the receiver's monotonic clock
    assert (bucket.events, bucket.failures, bucket.latencies) == (2, 1, [0.4])
    assert bucket.first_failure == pytest.approx(1000.25) and bucket.last_ok == 1000.75


@pytest.mark.parametrize(
    "wire",
    [
        {},
        {"events": -1, "failures": 0, "timeouts": 0, "probes": 0},
        {"events": "many", "failures": 0, "timeouts": 0, "probes": 0},
        {"events": 1, "failures": 0, "timeouts": 0, "probes": 0, "latencies": 3},
    ],
)
def test_a_malformed_second_is_refused(wire: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError, KeyError)):
        decode(wire, 1, 0.0)


def test_counts_never_exceed_the_events() -> None:
    wire = encode(Bucket(1))
    wire.update(events=2, failures=5, timeouts=9, probes=7)
    bucket = decode(wire, 1, 0.0)
    assert (bucket.events, bucket.failures, bucket.timeouts, bucket.probes) == (2, 2, 2, 2)


async def test_the_relay_passes_outcomes_on_and_wakes_for_failures() -> None:
    signals = Signals()
    relay = Relay(signals, wall=lambda: 50.5)
    relay.attempt("p/m", "ok", True, 0.1, 7.0)
    relay.first_byte("p/m", 0.01, 7.0)
    assert not relay.news.is_set(), "a success with no count running is no news"
    relay.attempt("p/m", "server_error", False, 1.0, 7.5)
    assert relay.news.is_set()
    assert signals.stats("p/m", 5.0, 8.0).events == 2  # the local signals, as before
    [(number, targets)] = relay.summaries.drain(51.0)
    assert number == 50 and targets["p/m"].events == 2 and targets["p/m"].ttfbs == [0.01]
    assert {k: p.failures for k, p in relay.failures.drain().items()} == {"p/m": 1}
    relay.news.clear()
    relay.attempt("p/m", "ok", True, 0.1, 8.0)
    assert relay.news.is_set(), "the success ends the count the others hold"
