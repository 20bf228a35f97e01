"""The public page's state from the plan and Standby's incidents: what customers felt."""

from __future__ import annotations

from datetime import UTC, datetime
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
    started = datetime.fromtimestamp(row.opened_at, UTC).strftime("%b %d, %H:%M UTC")
    assert [u.body for u in public.updates] == [  # newest first, as Statuspage lists them
        "A fix is in place for Chat assistant; we are monitoring the results.",
        "We are switching to our backup provider.",
        f"We are investigating problems with Chat assistant since {started}.",
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


ESCALATING = {
    "channels": {"hooks": {"kind": "webhook", "url": "http://127.0.0.1:9/h"}},
}


@pytest.mark.parametrize(
    ("escalation", "events", "age", "listed"),
    [
        ([], (), 1, True),  # no escalation at all: nobody would publish it, so it is
        ([{"after": "0s", "notify": ["hooks"]}], (), 3600, False),  # waits for a person
        ([{"after": "0s", "notify": ["hooks"]}], ("published",), 1, True),  # who did
        ([{"after": "2m", "publish": "status-page"}], (), 60, False),  # not yet
        ([{"after": "2m", "publish": "status-page"}], (), 120, True),  # the step came
    ],
)
def test_the_plan_decides_when_an_incident_is_published(
    escalation: list[dict[str, Any]], events: tuple[str, ...], age: float, listed: bool
) -> None:
    timeline = (
        IncidentEvent(NOW - age, "opened", "detected"),
        *(IncidentEvent(NOW - 1, kind, "alice") for kind in events),
    )
    row = incident("route:chat", opened_at=NOW - age, events=timeline)
    view = build(plan(**PUBLISHED, notify={**ESCALATING, "escalation": escalation}), [row], NOW)
    assert len(view.incidents) == int(listed)
    assert view.components[0].status == "major_outage"  # the state is the truth either way


def test_updates_nobody_wrote_come_from_the_plans_templates_in_its_language() -> None:
    words = {
        "language": "fr",
        "templates": {
            "fr": {
                "identified": "Cause trouvée pour {component}.{eta}",
                "eta": " Retour prévu : {eta}.",
            }
        },
    }
    row = incident(
        "route:chat",
        status="identified",
        events=(
            IncidentEvent(NOW - 60, "opened", "detected"),
            IncidentEvent(NOW - 30, "update", "", {"status": "identified"}),
        ),
    )
    the_plan = plan(status_page={**PUBLISHED["status_page"], **words})
    etas = {row.id: "Dec 3, 18:30 UTC"}
    [public] = build(the_plan, [row], NOW, etas=etas).incidents
    assert public.updates[0].status == "identified"
    assert (
        public.updates[0].body
        == "Cause trouvée pour Chat assistant. Retour prévu : Dec 3, 18:30 UTC."
    )
    assert public.updates[1].body.startswith("We are investigating")  # English beneath
    assert public.eta == "Dec 3, 18:30 UTC"
    [english] = build(the_plan, [row], NOW, etas=etas, language="en").incidents
    assert english.updates[0].body == (
        "We have identified the cause of the problems with Chat assistant. "
        "Estimated restoration: Dec 3, 18:30 UTC."
    )


@pytest.mark.parametrize(
    ("templates", "error"),
    [
        ({"en": {"fixed": "x"}}, "unknown key 'fixed'"),
        ({"en": {"resolved": "{provider} is back"}}, r"unknown field\(s\) provider"),
    ],
)
def test_a_template_with_an_unknown_key_or_field_is_refused(
    templates: dict[str, Any], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        plan(status_page={"templates": templates})
