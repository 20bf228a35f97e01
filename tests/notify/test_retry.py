"""The retry policy's pauses, and Retry-After parsing."""

from __future__ import annotations

import pytest

from standby.notify.retry import Retry, retry_after

POLICY = Retry(tries=4, backoff=1.0, max_backoff=5.0, max_retry_after=30.0)


@pytest.mark.parametrize(
    ("attempt", "header", "rand", "pause"),
    [
        (1, None, 0.0, 0.5),  # the upper half of the step: never zero
        (1, None, 1.0, 1.0),
        (2, None, 0.0, 1.0),
        (3, None, 0.5, 3.0),
        (4, None, 1.0, 5.0),  # 8 s capped at max_backoff
        (9, None, 0.0, 2.5),
        (1, 7.0, 0.9, 7.0),  # Retry-After honoured as is, no jitter
        (1, 3600.0, 0.0, 30.0),  # … up to max_retry_after
        (1, -3.0, 0.0, 0.0),
    ],
)
def test_pause(attempt: int, header: float | None, rand: float, pause: float) -> None:
    assert POLICY.pause(attempt, header, rand) == pause


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (400, False),
        (401, False),
        (404, False),
        (408, False),
        (302, False),
    ],
)
def test_retryable(status: int, retryable: bool) -> None:
    assert Retry.retryable(status) is retryable


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("2", 2.0),
        (" 1.5 ", 1.5),
        ("-4", 0.0),
        ("soon", None),
        ("nan", None),
        ("Thu, 01 Jan 2026 00:00:30 GMT", 30.0),  # an HTTP date, from now
        ("Wed, 31 Dec 2025 23:59:00 GMT", 0.0),  # in the past
    ],
)
def test_retry_after(header: str | None, seconds: float | None) -> None:
    assert retry_after(header, now=1_767_225_600.0) == seconds


def test_a_policy_must_try_at_least_once() -> None:
    with pytest.raises(ValueError, match="tries"):
        Retry(tries=0)
