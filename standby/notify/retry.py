"""When to try a notification again: capped exponential backoff with jitter, and the
receiver's ``Retry-After`` honoured up to a cap. Pure: the caller draws the random
number and does the waiting."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class Retry:
    """How often and how patiently an HTTP channel tries one message.

    Retried: connection failures, timeouts, 5xx and 429. Never retried: any other 4xx,
    a redirect (not followed: a signed body goes only where the plan says).
    """

    tries: int = 4  # attempts in all, the first included
    backoff: float = 1.0  # the pause before the second attempt (before jitter)
    max_backoff: float = 30.0  # the pause stops doubling here
    max_retry_after: float = 60.0  # a longer Retry-After is cut to this

    def __post_init__(self) -> None:
        if self.tries < 1:
            raise ValueError("tries must be at least 1")
        if min(self.backoff, self.max_backoff, self.max_retry_after) < 0:
            raise ValueError("pauses cannot be negative")

    def pause(self, attempt: int, retry_after: float | None, rand: float) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        ``rand`` in [0, 1) spreads the pause over the upper half of its step, so senders
        that failed together do not come back together, and never with no pause at all.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        step = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return step / 2 + rand * step / 2

    @staticmethod
    def retryable(status: int) -> bool:
        """Is this HTTP status worth another try?"""
        return status == 429 or status >= 500


def retry_after(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) as seconds from ``now``
    (unix time); ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now
    if seconds != seconds:  # NaN
        return None
    return max(seconds, 0.0)
