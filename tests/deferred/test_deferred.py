"""Deferred completion's pure decisions and the callback signature, with times as numbers."""

from __future__ import annotations

from typing import Any

import pytest

from standby.deferred.callbacks import sign, verify_signature
from standby.deferred.policy import (
    HEADER_PARAM,
    MAX_BACKOFF,
    METADATA_PARAM,
    Callback,
    CallbackHosts,
    Pacer,
    backoff,
    callback_url,
    completion_id,
    opted_in,
    plan_tick,
    url_refusal,
)
from standby.journal.store import DeferredRow

SECRET = "whsec_test"


def row(rid: str, received_at: float, *, until: float = 1e12, tries: int = 0) -> DeferredRow:
    return DeferredRow(
        rid=rid,
        received_at=received_at,
        until=until,
        callback=None,
        route="m",
        request={"model": "m", "messages": []},
        tries=tries,
    )


def scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "path": "/v1/chat/completions", "headers": list(headers)}


# -- ids and backoff -------------------------------------------------------------------


def test_completion_id_is_the_request_ids_hex_part() -> None:
    assert completion_id("req_0123abcd") == "chatcmpl-0123abcd"


@pytest.mark.parametrize(
    ("tries", "pause"),
    [(0, 0.0), (1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, MAX_BACKOFF), (500, MAX_BACKOFF)],
)
def test_backoff_doubles_per_failed_try_up_to_a_minute(tries: int, pause: float) -> None:
    assert backoff(tries) == pause


def test_backoff_scales_with_its_base_and_respects_its_cap() -> None:
    assert backoff(3, base=0.1) == pytest.approx(0.4)
    assert backoff(10, base=5, cap=20) == 20


# -- what to do in one pass --------------------------------------------------------------


def test_oldest_rows_start_first_within_the_free_slots() -> None:
    rows = [row("req_c", 30), row("req_a", 10), row("req_b", 20)]
    tick = plan_tick(rows, 100, busy=(), not_before={}, slots=2)
    assert [r.rid for r in tick.start] == ["req_a", "req_b"]
    assert tick.expire == []


def test_ties_on_arrival_time_are_broken_by_request_id() -> None:
    tick = plan_tick([row("req_2", 5), row("req_1", 5)], 100, busy=(), not_before={}, slots=1)
    assert [r.rid for r in tick.start] == ["req_1"]


def test_rows_in_flight_or_pausing_are_left_alone() -> None:
    rows = [row("req_a", 1), row("req_b", 2), row("req_c", 3), row("req_d", 4)]
    tick = plan_tick(rows, 100, busy={"req_a"}, not_before={"req_b": 100.5, "req_c": 100}, slots=5)
    assert [r.rid for r in tick.start] == ["req_c", "req_d"]  # a pause ending now is over


def test_expired_rows_fail_even_without_free_slots() -> None:
    rows = [row("req_old", 1, until=50), row("req_new", 2, until=500)]
    tick = plan_tick(rows, 100, busy=(), not_before={}, slots=0)
    assert [r.rid for r in tick.expire] == ["req_old"]
    assert tick.start == []


def test_a_row_in_flight_is_not_expired_under_its_own_try() -> None:
    tick = plan_tick([row("req_a", 1, until=50)], 100, busy={"req_a"}, not_before={}, slots=1)
    assert tick.expire == [] and tick.start == []


# -- pacing ------------------------------------------------------------------------------


def test_pacer_allows_a_burst_then_its_rate() -> None:
    pacer = Pacer(rate=2.0, burst=2.0, now=0.0)
    assert [pacer.take(0.0) for _ in range(3)] == [True, True, False]
    assert not pacer.take(0.4)
    assert pacer.take(0.5)  # one token per half second
    assert not pacer.take(0.5)
    assert pacer.available(100.0) == 2  # never more than the burst
    assert repr(pacer) == "<Pacer rate=2.0/s tokens=2.00/2>"


def test_pacer_ignores_a_clock_that_steps_back() -> None:
    pacer = Pacer(rate=1.0, burst=1.0, now=10.0)
    assert pacer.take(10.0)
    assert pacer.available(5.0) == 0
    assert pacer.available(11.0) == 1


def test_pacer_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        Pacer(rate=0, burst=1, now=0)
    with pytest.raises(ValueError):
        Pacer(rate=1, burst=0.5, now=0)


# -- opting in -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ([(b"standby-defer", b"allow")], {}, True),
        ([(b"standby-defer", b" Allow ")], {}, True),
        ([(b"standby-defer", b"never")], {"metadata": {"standby_defer": "true"}}, False),
        ([], {"metadata": {"standby_defer": "true"}}, True),
        ([], {"metadata": {"standby_defer": "TRUE"}}, True),
        ([], {"metadata": {"standby_defer": "false"}}, False),
        ([], {"metadata": "standby_defer"}, False),
        ([], {}, False),
    ],
)
def test_callers_opt_in_by_header_or_metadata(
    headers: list[tuple[bytes, bytes]], body: dict[str, Any], expected: bool
) -> None:
    assert opted_in(scope(*headers), body) is expected


def test_callback_url_comes_from_the_header_first_then_metadata() -> None:
    meta = {"metadata": {"standby_callback": "https://hooks.example/m"}}
    header = (b"standby-callback-url", b" https://hooks.example/h ")
    assert callback_url(scope(header), meta) == Callback("https://hooks.example/h", HEADER_PARAM)
    assert callback_url(scope(), meta) == Callback("https://hooks.example/m", METADATA_PARAM)
    assert callback_url(scope(), {}) is None
    assert callback_url(scope(), {"metadata": {"standby_callback": 5}}) is None


@pytest.mark.parametrize("url", ["ftp://x/y", "file:///etc/passwd", "javascript:alert(1)"])
def test_callback_urls_other_than_http_are_refused(url: str) -> None:
    found = callback_url(scope((b"standby-callback-url", url.encode())), {})
    assert found is not None and found.param == "Standby-Callback-URL"
    assert url_refusal(found.url, CallbackHosts()) == (
        "the callback URL must start with http:// or https://"
    )


# -- the signature -------------------------------------------------------------------------

BODY = b'{"id":"chatcmpl-1","object":"chat.completion"}'


def test_a_signature_verifies_against_the_exact_body() -> None:
    header = sign(SECRET, BODY, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify_signature(SECRET, header, BODY, now=1_700_000_010)
    assert verify_signature(SECRET, header, BODY.decode(), now=1_700_000_010)


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    digest = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, 1_700_000_000) == f"t=1700000000,v1={digest}"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b + b" "),  # body changed
        lambda h, b: (h.replace("t=1700000000", "t=1700000001"), b),  # timestamp changed
        lambda h, b: (h[:-1] + ("0" if h[-1] != "0" else "1"), b),  # digest changed
        lambda h, b: ("v1=" + h.split("v1=")[1], b),  # no timestamp
        lambda h, b: (h.split(",")[0], b),  # no digest
        lambda h, b: ("garbage", b),
    ],
)
def test_tampered_signatures_fail(tamper: Any) -> None:
    header, body = tamper(sign(SECRET, BODY, 1_700_000_000), BODY)
    assert not verify_signature(SECRET, header, body, now=1_700_000_000)


def test_a_signature_outside_the_tolerance_is_a_replay() -> None:
    header = sign(SECRET, BODY, 1_700_000_000)
    assert verify_signature(SECRET, header, BODY, now=1_700_000_300)
    assert not verify_signature(SECRET, header, BODY, now=1_700_000_301)
    assert not verify_signature(SECRET, header, BODY, now=1_699_999_000)
    assert verify_signature(SECRET, header, BODY, now=1_700_000_600, tolerance=600)


def test_any_of_several_digests_may_match_during_secret_rotation() -> None:
    old = sign("whsec_old", BODY, 1_700_000_000)
    new = sign(SECRET, BODY, 1_700_000_000).split(",")[1]
    assert verify_signature(SECRET, f"{old}, {new}", BODY, now=1_700_000_000)
    assert not verify_signature("whsec_other", f"{old},{new}", BODY, now=1_700_000_000)


def test_an_empty_secret_never_verifies() -> None:
    assert not verify_signature("", sign("", BODY, 1), BODY, now=1)
