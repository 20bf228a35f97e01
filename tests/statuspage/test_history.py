"""A component's 90 days from the journal's hourly figures, incidents and maintenance."""

from __future__ import annotations

from typing import Any

import pytest

from standby.journal.incident_store import IncidentRow
from standby.journal.traffic_store import HourFigures
from standby.statuspage.history import DAY, HOUR, build_history, day_start, summarise

NOW = day_start(1_900_000_000.0) + 12 * HOUR  # noon
TODAY = day_start(NOW)


def hour(days_ago: int, at: int, requests: int, failed: int = 0, slow: int = 0) -> HourFigures:
    return HourFigures("chat", int(TODAY - days_ago * DAY + at * HOUR), requests, failed, slow)


def incident(days_ago: float, hours: float, severity: str = "major") -> IncidentRow:
    start = TODAY - days_ago * DAY + 3 * HOUR
    values: dict[str, Any] = {
        "id": f"inc_{days_ago}",
        "component": "route:chat",
        "title": "t",
        "status": "resolved",
        "severity": severity,
        "source": "detector",
        "opened_at": start,
        "updated_at": start + hours * HOUR,
        "resolved_at": start + hours * HOUR,
    }
    return IncidentRow(**values)


@pytest.mark.parametrize(
    ("hours", "incidents", "maintenance", "day", "state", "uptime"),
    [
        ([hour(0, 1, 1000)], [], [], 0, "operational", 1.0),
        ([hour(0, 1, 1000, failed=5)], [], [], 0, "operational", 0.995),
        ([hour(0, 1, 1000, failed=20)], [], [], 0, "degraded_performance", 0.98),
        ([hour(0, 1, 1000, slow=20)], [], [], 0, "degraded_performance", 0.98),
        ([hour(2, 1, 100)], [incident(2, 1)], [], 2, "major_outage", 1.0),
        ([hour(2, 1, 100)], [incident(2, 1, "minor")], [], 2, "degraded_performance", 1.0),
        # an incident that ran past midnight colours both days
        ([hour(3, 1, 10)], [incident(3, 23)], [], 2, "major_outage", None),
        (
            [hour(1, 1, 10)],
            [],
            [(TODAY - DAY + 0.5 * HOUR, TODAY - DAY + 2 * HOUR)],
            1,
            "under_maintenance",
            1.0,
        ),
        ([hour(5, 1, 10)], [], [], 30, "no_data", None),  # before the first figure
        ([hour(5, 1, 10)], [], [], 4, "operational", None),  # after it, even without traffic
    ],
)
def test_a_days_cell(
    hours: list[HourFigures],
    incidents: list[IncidentRow],
    maintenance: list[tuple[float, float]],
    day: int,
    state: str,
    uptime: float | None,
) -> None:
    summary = summarise(hours, maintenance, NOW)
    history = build_history(summary, [(i, "Chat unavailable") for i in incidents], maintenance, NOW)
    assert len(history.days) == 90
    cell = history.days[-1 - day]
    assert cell.start == TODAY - day * DAY
    assert (cell.state, cell.uptime) == (state, uptime)
    if incidents and cell.incidents:
        assert cell.incidents == ("Chat unavailable",)


def test_uptime_counts_what_customers_felt_and_leaves_maintenance_out() -> None:
    hours = [
        hour(0, 10, 1000, failed=10),  # within 24 h
        hour(3, 5, 1000, failed=100),  # within 7 d
        hour(20, 5, 1000, slow=1000),  # within 30 d
        hour(60, 5, 1000),  # within 90 d
        hour(61, 5, 500, failed=500),  # in a maintenance window: not counted
    ]
    window = [(TODAY - 61 * DAY + 5 * HOUR, TODAY - 61 * DAY + 5.5 * HOUR)]
    history = build_history(summarise(hours, window, NOW), [], window, NOW)
    assert history.uptime_for("24h") == pytest.approx(0.99)
    assert history.uptime_for("7d") == pytest.approx(1890 / 2000)
    assert history.uptime_for("30d") == pytest.approx(1890 / 3000)
    assert history.uptime_for("90d") == pytest.approx(2890 / 4000)
    assert (
        build_history(summarise([], [], NOW), [], [], NOW).uptime_for("24h") is None
    )  # unknown, not 100 %
