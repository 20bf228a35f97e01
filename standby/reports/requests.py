"""The requests a report is about, read from the journal's database: one query over the
window's rows (by the index on ``received_at``, in ``journal.windows``), only the columns
the figures need, each row turned into a ``Fact`` the pure fold (``reports.figures``)
works on.

The baseline — the same hours of the previous seven days — is read as latencies only
(answered requests, not deferred, not a client's own mistake): comparing with the same
hours of earlier days keeps the time of day out of the "added latency".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from standby.journal import events as ev
from standby.journal.windows import answered_seconds, window_rows

DAY = 86_400.0
BASELINE_DAYS = 7


@dataclass(frozen=True, slots=True)
class Try:
    """One attempt as the journal lists it."""

    target: str
    outcome: str
    seconds: float  # how long this try took (tries follow one another)
    mid_answer: bool = False  # a stream that broke after the client had some of it

    @property
    def skipped(self) -> bool:
        return self.outcome.startswith("skipped_")

    @property
    def failed(self) -> bool:
        return self.outcome != "ok" and not self.skipped and self.outcome != ev.CLIENT_GONE


@dataclass(frozen=True, slots=True)
class Fact:
    """One request, as much of it as a report needs."""

    rid: str
    received_at: float
    finished_at: float | None
    route: str
    client: str
    stream: bool
    state: str
    status: int | None
    target: str  # "provider/model" that answered (or last answered an error), or ""
    prompt_tokens: int
    completion_tokens: int
    tries: tuple[Try, ...]
    deferred: bool

    @property
    def client_error(self) -> bool:
        """The caller's own mistake (a 4xx other than 429): not the outage's doing."""
        return self.status is not None and 400 <= self.status < 500 and self.status != 429

    @property
    def answered(self) -> bool:
        return self.state == ev.COMPLETED

    @property
    def failed(self) -> bool:
        return self.state in (ev.FAILED, ev.INTERRUPTED) and not self.client_error


async def read_facts(
    engine: AsyncEngine, start: float, end: float, routes: Iterable[str] | None = None
) -> list[Fact]:
    """The requests received in ``[start, end)`` (of ``routes`` when given), oldest first."""
    return [fact(row) for row in await window_rows(engine, start, end, routes)]


def fact(row: Any) -> Fact:
    usage = _object(row.usage_json)
    target = f"{row.provider}/{row.model}" if row.provider and row.model else ""
    return Fact(
        rid=row.rid,
        received_at=float(row.received_at),
        finished_at=None if row.finished_at is None else float(row.finished_at),
        route=row.route or "",
        client=row.client or "",
        stream=bool(row.stream),
        state=row.state,
        status=row.status,
        target=target,
        prompt_tokens=_count(usage, "prompt_tokens", "input_tokens"),
        completion_tokens=_count(usage, "completion_tokens", "output_tokens"),
        tries=tries(row.attempts_json),
        deferred=row.defer_until is not None,
    )


def tries(text: str | None) -> tuple[Try, ...]:
    """The journal's ``[[target, outcome, seconds(, "mid_answer")], …]``."""
    found = []
    for item in _list(text):
        if isinstance(item, list) and len(item) >= 3:
            found.append(
                Try(
                    str(item[0]),
                    str(item[1]),
                    float(item[2]),
                    len(item) > 3 and item[3] == ev.MID_ANSWER,
                )
            )
    return tuple(found)


def baseline_spans(
    start: float, end: float, days: int = BASELINE_DAYS
) -> list[tuple[float, float]]:
    """The same hours on each of the ``days`` days before ``[start, end)``; a window of a
    day or more is compared with the ``days`` days before it as a whole."""
    if end - start >= DAY:
        return [(start - days * DAY, start)]
    return [(start - k * DAY, end - k * DAY) for k in range(1, days + 1)]


async def baseline_latencies(
    engine: AsyncEngine, spans: Sequence[tuple[float, float]], routes: Iterable[str] | None = None
) -> list[float]:
    """Seconds from receipt to the answer's end of the requests answered in ``spans``
    (deferred ones left out; the journal reads them, ``journal.windows``)."""
    return await answered_seconds(engine, spans, routes)


def _object(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _list(text: str | None) -> Sequence[Any]:
    if not text:
        return ()
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return ()
    return value if isinstance(value, list) else ()


def _count(usage: dict[str, Any], *names: str) -> int:
    for name in names:
        value = usage.get(name)
        if isinstance(value, int) and value >= 0:
            return value
    return 0
