"""A component's last 90 days as customers lived them: one cell per day and the uptime
over 24 hours, 7, 30 and 90 days.

Pure: the journal's hourly traffic figures (``journal.traffic``: requests received,
failed, answered later than the objective), the public incidents and the plan's
whole-service maintenance windows in, a ``History`` out; ``now`` is passed in.

* **Uptime** is the share of requests served well — neither failed nor slower than the
  objective — over the window's hours; an hour that overlaps a maintenance window is left
  out (announced downtime is not an outage).  With no request in the window it is
  unknown (``None``), never 100 %.
* **A day's state** is the worst of: the incidents that affected the component that day
  (major → major outage, minor → degraded performance), and the figures themselves (under
  99 % served well → degraded performance, so a bad day shows even when no incident was
  opened); otherwise under maintenance when a window touched it, operational when
  requests came or the page already existed, and "no data" before the first figure.

Days are UTC days, newest last.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from standby.journal.incident_store import IncidentRow
from standby.journal.traffic_store import HourFigures, RouteSummary

DAY = 86_400
HOUR = 3_600
DAYS = 90
WINDOWS = (("24h", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY), ("90d", 90 * DAY))
GOOD_DAY = 0.99  # a day served worse than this is degraded, incident or not
NO_DATA = "no_data"
_RANK = {
    NO_DATA: 0,
    "operational": 1,
    "under_maintenance": 2,
    "degraded_performance": 3,
    "partial_outage": 4,
    "major_outage": 5,
}


@dataclass(frozen=True, slots=True)
class Day:
    date: str  # YYYY-MM-DD (UTC)
    start: float
    state: str  # a Statuspage component status, or "no_data"
    requests: int
    failed: int
    slow: int
    incidents: tuple[str, ...]  # the public titles of the incidents of that day
    maintenance: bool

    @property
    def uptime(self) -> float | None:
        if not self.requests:
            return None
        return (self.requests - self.failed - self.slow) / self.requests


@dataclass(frozen=True, slots=True)
class History:
    days: tuple[Day, ...]  # oldest first
    uptime: tuple[tuple[str, float | None], ...]  # ("24h", 0.9993), …

    def uptime_for(self, window: str) -> float | None:
        return dict(self.uptime)[window]


Span = tuple[float, float]


def _overlaps(span: Span, start: float, end: float) -> bool:
    return span[0] < end and start < span[1]


def day_start(at: float) -> float:
    return float(int(at // DAY) * DAY)


@dataclass(frozen=True, slots=True)
class Summary:
    """A component's figures, folded once (they change by the hour): per UTC day, the
    uptime per window, and the first hour with figures."""

    days: dict[float, tuple[int, int, int]]  # day start → requests, failed, slow
    uptime: tuple[tuple[str, float | None], ...]
    first: float | None


def summarise(hours: Iterable[HourFigures], maintenance: Sequence[Span], now: float) -> Summary:
    """Fold the hourly figures of one component's routes (see the module's text)."""
    per_hour: dict[int, list[int]] = {}
    for figures in hours:
        hour = per_hour.setdefault(figures.hour, [0, 0, 0])
        hour[0] += figures.requests
        hour[1] += figures.failed
        hour[2] += figures.slow
    per_day: dict[float, list[int]] = {}
    for hour_start, (requests, failed, slow) in per_hour.items():
        day = per_day.setdefault(day_start(hour_start), [0, 0, 0])
        day[0] += requests
        day[1] += failed
        day[2] += slow
    return Summary(
        days={day: (f[0], f[1], f[2]) for day, f in per_day.items()},
        uptime=tuple(_uptimes(per_hour, maintenance, now)),
        first=float(min(per_hour)) if per_hour else None,
    )


def merge(routes: Sequence[RouteSummary]) -> Summary:
    """A component's ``Summary`` from its routes' sums (``traffic_store.summarise_routes``)."""
    days: dict[float, list[int]] = {}
    windows = {name: [0, 0] for name, _ in WINDOWS}
    firsts = []
    for route in routes:
        for start, (requests, failed, slow) in route.days.items():
            day = days.setdefault(start, [0, 0, 0])
            day[0] += requests
            day[1] += failed
            day[2] += slow
        for name, (requests, bad) in route.windows.items():
            windows[name][0] += requests
            windows[name][1] += bad
        if route.first is not None:
            firsts.append(route.first)
    return Summary(
        days={start: (f[0], f[1], f[2]) for start, f in days.items()},
        uptime=tuple((name, (n - bad) / n if n else None) for name, (n, bad) in windows.items()),
        first=min(firsts, default=None),
    )


def build_history(
    summary: Summary,
    incidents: Iterable[tuple[IncidentRow, str]],
    maintenance: Sequence[Span],
    now: float,
    *,
    days: int = DAYS,
    created_at: float | None = None,
) -> History:
    """The history of one component: its ``summary``, its ``incidents`` (each with its
    public title, "" when unpublished), the whole service's ``maintenance`` windows.
    ``created_at``: since when the page exists (days before it with no figures are "no
    data")."""
    first_day = day_start(now) - (days - 1) * DAY
    first_date = datetime.fromtimestamp(first_day, UTC).date().toordinal()
    spans = [
        (incident.first_failure_at or incident.opened_at, incident.resolved_at or now, incident)
        for incident, _ in incidents
    ]
    titles = {incident.id: title for incident, title in incidents}
    # each incident onto the days it touched (not each day over every incident)
    touching: dict[int, list[IncidentRow]] = {}
    for began, ended, incident in spans:
        first = max(0, int((began - first_day) // DAY))
        last = min(days - 1, int((ended - first_day) // DAY))
        for index in range(first, last + 1):
            if _overlaps((began, ended), first_day + index * DAY, first_day + (index + 1) * DAY):
                touching.setdefault(index, []).append(incident)
    windows = [
        (max(0, int((w[0] - first_day) // DAY)), min(days - 1, int((w[1] - first_day) // DAY)), w)
        for w in maintenance
    ]
    starts = [s[0] for s in spans]
    if summary.first is not None:
        starts.append(summary.first)
    if created_at:
        starts.append(created_at)
    earliest = min(starts, default=now)
    cells = []
    for index in range(days):
        start = first_day + index * DAY
        end = start + DAY
        requests, failed, slow = summary.days.get(start, (0, 0, 0))
        touched = touching.get(index, ())
        in_maintenance = any(
            a <= index <= b and _overlaps(window, start, end) for a, b, window in windows
        )
        state = NO_DATA if end <= earliest and not requests else "operational"
        for incident in touched:
            worst = "major_outage" if incident.severity == "major" else "degraded_performance"
            if _RANK[worst] > _RANK[state]:
                state = worst
        if requests and (requests - failed - slow) / requests < GOOD_DAY:
            if _RANK["degraded_performance"] > _RANK[state]:
                state = "degraded_performance"
        if in_maintenance and state in (NO_DATA, "operational"):
            state = "under_maintenance"
        cells.append(
            Day(
                date=date.fromordinal(first_date + index).isoformat(),
                start=start,
                state=state,
                requests=requests,
                failed=failed,
                slow=slow,
                incidents=tuple(titles[i.id] for i in touched if titles[i.id]),
                maintenance=in_maintenance,
            )
        )
    return History(days=tuple(cells), uptime=summary.uptime)


def _uptimes(
    per_hour: dict[int, list[int]], maintenance: Sequence[Span], now: float
) -> list[tuple[str, float | None]]:
    counted = [
        (hour, figures)
        for hour, figures in per_hour.items()
        if hour <= now and not any(_overlaps(w, hour, hour + HOUR) for w in maintenance)
    ]
    found: list[tuple[str, float | None]] = []
    for name, length in WINDOWS:
        since = now - length
        requests = bad = 0
        for hour, (count, failed, slow) in counted:
            if hour + HOUR > since:
                requests += count
                bad += failed + slow
        found.append((name, (requests - bad) / requests if requests else None))
    return found
