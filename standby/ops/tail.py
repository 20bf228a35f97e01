"""``standby journal tail``: the latest requests as a rich table, and following new ones.

Following polls the database (the gateway may be another process): each poll reads the
requests received since a little before the newest arrival of the previous poll — the
database trails the write-ahead log by a batch, so a request can land slightly out of
order — and prints the ones not seen yet and the ones whose state changed (a stream
``accepted`` a minute ago that has just ``completed``).  What it remembers is bounded by
that window.  A replica replaying a long outage's spool lands requests far older than
the window: those are not shown (``standby export --since`` finds them).
"""

from __future__ import annotations

from datetime import date, datetime

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from standby.journal.store import JournalStore, RequestRow
from standby.ops.export import iter_requests

__all__ = ["RequestTable", "Tail", "attempts_summary", "table"]

SLACK = 10.0  # seconds behind the newest row seen that a poll looks again
OPEN_FOR = 600.0  # follow an unfinished request's state this long at most
_STYLE = {
    "completed": "green",
    "failed": "red",
    "interrupted": "yellow",
    "accepted": "cyan",
    "deferred": "magenta",
    "client_gone": "yellow",
}
_UNFINISHED = ("accepted", "deferred")


class Tail:
    """The latest requests (``latest``), then what changed since (``poll``)."""

    STATES = ("accepted", "completed", "failed", "interrupted", "deferred", "client_gone")

    def __init__(
        self,
        store: JournalStore,
        *,
        state: str | None = None,
        route: str | None = None,
        console: Console | None = None,
    ) -> None:
        self.store = store
        self.state = state
        self.route = route
        self.console = console or Console(highlight=False)
        self.seen: dict[str, tuple[str, float]] = {}  # rid → (state, received_at)
        self.horizon: float | None = None  # the newest arrival at the last poll (None: none)

    def __repr__(self) -> str:
        return (
            f"Tail(state={self.state!r}, route={self.route!r}, horizon={self.horizon}, "
            f"tracking={len(self.seen)})"
        )

    async def latest(self, limit: int) -> list[RequestRow]:
        """The ``limit`` newest requests, oldest first; later polls start from them."""
        rows = await self.store.list_requests(state=self.state, route=self.route, limit=limit)
        for row in rows:
            self.seen[row.rid] = (row.state, row.received_at)
        top = await self.store.list_requests(limit=1)
        if top:  # remember the rest of the window without showing it
            self.horizon = top[0].received_at
            await self.poll()
        return rows[::-1]

    async def poll(self) -> list[RequestRow]:
        """Requests new since the last poll, or whose state changed, oldest first.

        The window is measured on the journal's own times (the gateway's clock, which
        may not be this machine's): from ``SLACK`` before the newest arrival of the
        previous poll, widened to the oldest unfinished request still followed.
        """
        top = await self.store.list_requests(limit=1)  # the newest arrival of all
        if not top:
            return []
        newest = top[0].received_at
        # no horizon: the journal was empty when the tail started, all of it is new
        since = None if self.horizon is None else self.horizon - SLACK
        self.horizon = newest
        for state, received in self.seen.values():
            if since is not None and state in _UNFINISHED and received > newest - OPEN_FOR:
                since = min(since, received)
        fresh = []
        async for row in iter_requests(self.store, since=since, state=self.state, route=self.route):
            known = self.seen.get(row.rid)
            if known is None or known[0] != row.state:
                fresh.append(row)
            self.seen[row.rid] = (row.state, row.received_at)
        if since is not None:
            for rid in [rid for rid, (_, received) in self.seen.items() if received < since]:
                del self.seen[rid]
        return sorted(fresh, key=lambda row: (row.received_at, row.rid))

    def show(self, rows: list[RequestRow], *, header: bool) -> None:
        if header and not rows:
            self.console.print("no requests in the journal yet", style="dim")
        if rows:
            self.console.print(table(rows, header=header))


def attempts_summary(row: RequestRow) -> str:
    """``primary:unavailable, backup:ok`` (provider and outcome of each attempt)."""
    return (
        ", ".join(f"{target.split('/', 1)[0]}:{outcome}" for target, outcome, _ in row.attempts)
        or "-"
    )


# Each column with the console width it is shown from (the request id only on a wide
# console, the attempts from 80 columns) and its own width; None: it shares what the
# others leave, three parts route to two parts attempts.
_COLUMNS: tuple[tuple[str, int, int | None], ...] = (
    ("time", 0, 11),
    ("request", 120, 28),
    ("route → answered by", 0, None),
    ("state", 0, 11),
    ("attempts", 80, None),
    ("latency", 60, 7),
)
_ATTEMPTS_WIDTH = 20  # "primary:unavailable," whole: the list wraps between attempts
_GAP = 2  # between two columns


def table(rows: list[RequestRow], *, header: bool = True) -> RequestTable:
    """``rows`` as a table, one line per request, sized when it is printed."""
    return RequestTable(rows, header=header)


class RequestTable:
    """Requests as a rich table across the console's width.

    The columns are chosen and sized for that width when the table is printed: under
    120 columns the request id is left out, under 80 the attempts, under 60 the
    latency, so that the others keep room to show their values whole.  The same width
    gives the same columns, so tables printed one after the other (``--follow``) line
    up under the first.
    """

    def __init__(self, rows: list[RequestRow], *, header: bool = True) -> None:
        self.rows = rows
        self.header = header

    def __repr__(self) -> str:
        return f"RequestTable(rows={len(self.rows)}, header={self.header})"

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.fitted(options.max_width)

    def fitted(self, width: int) -> Table:
        """The table for a console ``width`` columns wide."""
        grid = Table(show_header=self.header, box=None, pad_edge=False, header_style="bold")
        shown = [(name, size) for name, from_width, size in _COLUMNS if width >= from_width]
        left = width - sum(size or 0 for _, size in shown) - _GAP * (len(shown) - 1)
        flexible = {"route → answered by": left}
        if any(name == "attempts" for name, _ in shown):
            attempts = max(_ATTEMPTS_WIDTH, left * 2 // 5)
            flexible = {"route → answered by": left - attempts, "attempts": attempts}
        for name, size in shown:
            grid.add_column(
                name,
                width=max(size or flexible[name], 1),
                no_wrap=size is not None,
                overflow="fold",
                justify="right" if name == "latency" else "left",
            )
        today = datetime.now().date()
        for row in self.rows:
            cells = _cells(row, today)
            grid.add_row(*(cells[name] for name, _ in shown))
        return grid


def _cells(row: RequestRow, today: date) -> dict[str, RenderableType]:
    received = datetime.fromtimestamp(row.received_at)
    asked = row.route if row.model_asked == row.route else f"{row.route} ({row.model_asked})"
    answered = f"{row.provider}/{row.model}" if row.provider else "-"
    state = row.state if row.status in (None, 200) else f"{row.state} {row.status}"
    latency = "…" if row.finished_at is None else _seconds(row.finished_at - row.received_at)
    return {
        "time": received.strftime("%H:%M:%S" if received.date() == today else "%m-%d %H:%M"),
        "request": row.rid,
        "route → answered by": f"{asked} → {answered}",
        "state": Text(state, style=_STYLE.get(row.state, "")),
        "attempts": attempts_summary(row),
        "latency": latency,
    }


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"
