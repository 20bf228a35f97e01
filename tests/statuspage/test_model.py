"""The public page's state from the plan and Standby's incidents: what customers felt."""

from __future__ import annotations

from typing import Any

import pytest

from standby.journal.incident_store import IncidentEvent, IncidentRow
from standby.plan.model import Plan
from standby.statuspage.model import build

NOW = 1_900_000_000.0


def plan(**extra: Any) -> Plan:
    return Plan.model_validate(
        {
            "providers": {"openai": {"base_url": "http://127.0.0.1:1"}},
            "routes": {
                "chat": {"targets": ["openai/gpt-4o"]},
                "embeddings": {"targets": ["openai/text-embedding-3-small"]},
            },
            **extra,
        }
    )


def incident(component: str, **values: Any) -> IncidentRow:
    fields: dict[str, Any] = {
        "id": f"inc_{component}",
        "component": component,
        "title": "Answers are slow",
        "status": "investigating",
        "severity": "major",
        "source": "detector",
        "opened_at": NOW - 60,
        "updated_at": NOW - 60,
        "events": (IncidentEvent(NOW - 60, "opened", "detected: 9 of 9 attempts failed"),),
        **values,
    }
    return IncidentRow(**fields)


PUBLISHED = {"status_page": {"components": {"Chat assistant": {"routes": ["ch*"]}}}}


@pytest.mark.parametrize(
    ("incidents", "status", "indicator", "shown"),
    [
        ([], "operational", "none", 0),
        # a provider's outage absorbed by failing over: internal
        ([incident("target:openai/gpt-4o")], "operational", "none", 0),
        ([incident("route:chat")], "major_outage", "critical", 1),
        ([incident("route:chat", severity="minor")], "degraded_performance", "minor", 1),
        ([incident("route:embeddings")], "operational", "none", 0),  # not this component
        ([incident("Chat assistant", source="manual")], "major_outage", "critical", 1),
        (
            [incident("route:chat", status="resolved", resolved_at=NOW - 1)],
            "operational",
            "none",
            1,
        ),
    ],
)
def test_a_component_is_down_only_when_customers_felt_it(
    incidents: list[IncidentRow], status: str, indicator: str, shown: int
) -> None:
    view = build(plan(**PUBLISHED), incidents, NOW)
    [component] = view.components
    assert (component.name, component.status, view.indicator) == (
        "Chat assistant",
        status,
        indicator,
    )
    assert len(view.incidents) == shown


def test_words_for_customers_never_carry_internal_terms() -> None:
    row = incident(
        "route:chat",
        events=(
            IncidentEvent(NOW - 60, "opened", "detected: 9 of 9 attempts failed"),
            IncidentEvent(NOW - 50, "acknowledged", "acknowledged by alice"),
            IncidentEvent(NOW - 40, "update", "We are switching to our backup provider."),
            IncidentEvent(NOW - 30, "monitoring", "signals look healthy again"),
        ),
    )
    [public] = build(plan(**PUBLISHED), [row], NOW).incidents
    assert public.name == "Chat assistant unavailable"
    assert [u.body for u in public.updates] == [  # newest first, as Statuspage lists them
        "A fix is in place; we are monitoring the results.",
        "We are switching to our backup provider.",
        "We are working on it.",
        "We are investigating problems with Chat assistant.",
    ]
    assert public.monitoring_at == NOW - 30


def test_without_components_each_route_is_one_and_maintenance_shows() -> None:
    window = {"start": "2030-03-17T17:40:00Z", "end": "2030-03-17T19:00:00Z", "note": "Move"}
    view = build(plan(incidents={"maintenance": [window]}), [], NOW)  # NOW is inside it
    assert [c.name for c in view.components] == ["chat", "embeddings"]
    assert {c.status for c in view.components} == {"under_maintenance"}
    assert view.indicator == "maintenance"
    [maintenance] = view.maintenances
    assert maintenance.name == "Move" and maintenance.status == "in_progress"
