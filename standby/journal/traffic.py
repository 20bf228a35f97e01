"""What customers experienced, per route and hour: the figures behind the status page's
uptime and its 90-day bars.

The follower counts each request once, as it writes the request's ending, into
``traffic_hours`` in the same transaction (``standby.journal.drivers``): a replay of the
log never counts twice, and the page reads a few thousand rows for 90 days instead of
scanning millions of requests.  The rule of what counts is here, once, and pure:

* a request ended by a client error (a 4xx other than 429: bad input, an unknown model,
  a wrong key) is not a request of the service: it does not count at all;
* one that ended ``failed`` or ``interrupted`` otherwise counts as failed;
* a non-streamed answer that came later than the page's ``objective`` after it was
  received (a deferred request completed on recovery, a slow provider) counts as slow;
* everything else — answered in time, or a stream the client left — counts as served.

The hour is the hour the request was *received* (unix seconds at its start, UTC).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from standby.journal import events as ev

HOUR = 3600
DEFAULT_OBJECTIVE = 30.0  # seconds: the plan's ``status_page.objective`` default
_ENDED_BADLY = frozenset({ev.FAILED, ev.INTERRUPTED})
_NOT_ENDED = frozenset({"accepted", ev.DEFERRED_STATE})

# (route, hour) → [requests, failed, slow]
Tally = dict[tuple[str, int], list[int]]


def outcome(
    *,
    state: str,
    status: int | None,
    stream: bool,
    received_at: float,
    finished_at: float,
    objective: float,
) -> tuple[int, int] | None:
    """(failed, slow) of one ended request, each 0 or 1; None when it does not count."""
    if status is not None and 400 <= status < 500 and status != 429:
        return None
    if state in _ENDED_BADLY:
        return 1, 0
    slow = not stream and state == ev.COMPLETED and finished_at - received_at > objective
    return 0, int(slow)


def add(
    tally: Tally,
    *,
    route: str,
    received_at: float,
    stream: bool,
    ending: Mapping[str, Any],
    objective: float,
) -> None:
    """Count one request that ``ending`` (an ending row of ``journal.batch``) ended."""
    if not route:
        return
    counted = outcome(
        state=ending["state"],
        status=ending["status"],
        stream=stream,
        received_at=received_at,
        finished_at=ending["finished_at"],
        objective=objective,
    )
    if counted is None:
        return
    key = (route, int(received_at // HOUR) * HOUR)
    figures = tally.get(key)
    if figures is None:
        tally[key] = [1, counted[0], counted[1]]
    else:
        figures[0] += 1
        figures[1] += counted[0]
        figures[2] += counted[1]


def of_finished(rows: Iterable[Mapping[str, Any]], objective: float) -> Tally:
    """The tally of requests accepted and ended in one batch (their rows are whole)."""
    tally: Tally = {}
    for row in rows:
        add(
            tally,
            route=row["route"],
            received_at=row["received_at"],
            stream=row["stream"],
            ending=row,
            objective=objective,
        )
    return tally


def of_finals(
    finals: Mapping[str, Mapping[str, Any]],
    found: Iterable[Sequence[Any]],
    objective: float,
    tally: Tally,
) -> None:
    """Add to ``tally`` the endings of requests accepted in an earlier batch: ``found``
    holds their rows as the database has them *before* this batch (rid, route,
    received_at, stream, state); one already ended is not counted again."""
    for rid, route, received_at, stream, state in found:
        ending = finals.get(rid)
        if ending is None or state not in _NOT_ENDED:
            continue
        add(
            tally,
            route=route,
            received_at=float(received_at),
            stream=bool(stream),
            ending=ending,
            objective=objective,
        )


def upsert_rows(tally: Tally) -> list[tuple[str, int, int, int, int]]:
    """The parameter rows of the ``traffic`` statement (``journal.drivers``), sorted so
    that two writers lock the rows in one order."""
    return [(route, hour, f[0], f[1], f[2]) for (route, hour), f in sorted(tally.items())]
