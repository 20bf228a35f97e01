"""Pure decisions of deferred completion: who opted in, which rows to try now, how long
to wait after a failed try, and how fast to start tries when providers recover.

Nothing here does I/O or reads a clock: the time comes in as an argument, so every
decision is tested directly (``tests/journal_deferred``).  ``standby.journal.deferred``
does the I/O around them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from standby.journal.store import DeferredRow

log = logging.getLogger("standby.deferred")

Scope = MutableMapping[str, Any]

MAX_BACKOFF = 60.0


def completion_id(rid: str) -> str:
    """The completion id promised in the 202: ``req_<hex>`` → ``chatcmpl-<hex>``."""
    return "chatcmpl-" + rid.removeprefix("req_")


def backoff(tries: int, *, base: float = 1.0, cap: float = MAX_BACKOFF) -> float:
    """Pause before the next try after ``tries`` failed ones: base, 2 base, 4 base … cap."""
    if tries <= 0:
        return 0.0
    return min(cap, base * 2.0 ** min(tries - 1, 32))


@dataclass(frozen=True, slots=True)
class Tick:
    """What one pass of the runner does: fail ``expire``, try ``start`` (in this order)."""

    expire: list[DeferredRow]
    start: list[DeferredRow]


def plan_tick(
    rows: Iterable[DeferredRow],
    now: float,
    *,
    busy: Iterable[str],
    not_before: Mapping[str, float],
    slots: int,
) -> Tick:
    """Pick, oldest first, the rows to expire and at most ``slots`` rows to try now.

    Rows being tried (``busy``) are left alone; a row still pausing after a failed try
    (``not_before``) waits, even when the database does not filter on it.
    """
    skip = set(busy)
    expire: list[DeferredRow] = []
    start: list[DeferredRow] = []
    for row in sorted(rows, key=lambda r: (r.received_at, r.rid)):
        if row.rid in skip:
            continue
        if row.until <= now:
            expire.append(row)
        elif len(start) < slots and not_before.get(row.rid, 0.0) <= now:
            start.append(row)
    return Tick(expire=expire, start=start)


def unconfirmed(
    settled: Mapping[str, float], rows: Sequence[DeferredRow], limit: int
) -> dict[str, float]:
    """The finished rows (rid → arrival) the store may still show as pending.

    The database trails the journal by a batch, so a row answered a moment ago may be
    offered again; it is kept out until a store answer proves it final: absent from a
    page that was not full, or absent though older than the page's newest row.
    """
    seen = {row.rid for row in rows}
    horizon = rows[-1].received_at if len(rows) >= limit and rows else math.inf
    return {
        rid: at
        for rid, at in settled.items()
        if rid in seen or (len(rows) >= limit and at >= horizon)
    }


class Pacer:
    """Token bucket: ``rate`` starts per second on average, at most ``burst`` at once."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def __repr__(self) -> str:
        return f"<Pacer rate={self.rate}/s tokens={self.tokens:.2f}/{self.burst:g}>"

    def available(self, now: float) -> int:
        """Whole starts allowed at ``now``."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)
        return int(self.tokens)

    def take(self, now: float) -> bool:
        if self.available(now) < 1:
            return False
        self.tokens -= 1.0
        return True


def opted_in(scope: Scope, body: Mapping[str, Any]) -> bool:
    """The caller allows deferral: ``Standby-Defer: allow`` or ``metadata.standby_defer``."""
    value = _header(scope, b"standby-defer")
    if value is not None:
        return value.strip().lower() in (b"allow", b"true", b"1")
    metadata = body.get("metadata")
    flag = metadata.get("standby_defer") if isinstance(metadata, dict) else None
    return flag is True or (isinstance(flag, str) and flag.strip().lower() == "true")


def callback_url(scope: Scope, body: Mapping[str, Any]) -> str | None:
    """``Standby-Callback-URL`` or ``metadata.standby_callback``, if an http(s) URL."""
    raw = _header(scope, b"standby-callback-url")
    url: Any = raw.decode("latin-1").strip() if raw is not None else None
    if url is None:
        metadata = body.get("metadata")
        url = metadata.get("standby_callback") if isinstance(metadata, dict) else None
    if not isinstance(url, str) or not url:
        return None
    if not url.startswith(("http://", "https://")):
        log.warning("ignoring a deferred callback URL that is not http(s)")
        return None
    return url


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value)
    return None
