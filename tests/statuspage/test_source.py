"""Where views come from: built once per window and language, at once when an open
incident changes, one build at a time however many visitors ask."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from standby.journal.incident_store import IncidentEvent, IncidentRow
from standby.plan.model import Plan
from standby.statuspage import source as source_module
from standby.statuspage.source import PageSource

PLAN = Plan.model_validate(
    {
        "providers": {"p": {"base_url": "http://127.0.0.1:1/v1"}},
        "routes": {"chat": {"targets": ["p/m"]}},
        "status_page": {"templates": {"fr": {"resolved": "Réglé."}}},
    }
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def incident(status: str = "investigating") -> IncidentRow:
    return IncidentRow(
        id="inc_1",
        component="route:chat",
        title="t",
        status=status,
        severity="major",
        source="detector",
        opened_at=1.0,
        updated_at=1.0,
        events=(IncidentEvent(1.0, "opened", "detected"),),
    )


def source(open_now: list[IncidentRow], clock: Clock, plan: Plan = PLAN) -> PageSource:
    return PageSource(
        lambda: plan,
        lambda: list(open_now),
        route_targets=lambda plan: {},
        clock=clock,
        wall=clock,
    )


async def test_a_view_is_built_again_only_when_the_page_changes() -> None:
    clock = Clock()
    clock.now = 1_900_000_000.0  # 2030-03-17 17:46:40 UTC
    pages = source([], clock)
    first = await pages.view()
    assert await pages.view() is first and await pages.view("de") is first  # no German words
    french = await pages.view("fr")
    assert french is not first and french.language == "fr"
    clock.now += 30.0  # nothing changed: the same object (its renderings, its ETag)
    assert await pages.view() is first
    clock.now += 59.0  # past max_age: built again, and still the same page
    assert await pages.view() is first
    clock.now = (clock.now // 86_400 + 1) * 86_400  # midnight: built again (a new day)
    assert await pages.view() is first  # but without a journal there are no day cells


async def test_a_maintenance_window_starting_rebuilds_the_page() -> None:
    clock = Clock()
    clock.now = 1_900_000_000.0  # 2030-03-17 17:46:40 UTC
    windows = [{"start": "2030-03-17T18:00:00Z", "end": "2030-03-17T19:00:00Z"}]
    plan = Plan.model_validate(
        {
            **PLAN.model_dump(mode="json", exclude_defaults=True),
            "incidents": {"maintenance": windows},
        }
    )
    pages = source([], clock, plan)
    assert (await pages.view()).indicator == "none"
    clock.now = plan.incidents.maintenance[0].start.timestamp()
    assert (await pages.view()).indicator == "maintenance"
    clock.now = plan.incidents.maintenance[0].end.timestamp()
    assert (await pages.view()).indicator == "none"


async def test_a_change_of_an_open_incident_is_seen_at_once() -> None:
    clock = Clock()
    open_now: list[IncidentRow] = []
    pages = source(open_now, clock)
    assert (await pages.view()).indicator == "none"
    open_now.append(incident())
    assert (await pages.view()).indicator == "critical"  # within the window, at once
    open_now[0] = replace(open_now[0], status="monitoring", updated_at=2.0)
    assert (await pages.view()).incidents[0].status == "monitoring"


async def test_visitors_arriving_during_a_build_share_it(monkeypatch: object) -> None:
    clock = Clock()
    pages = source([], clock)
    builds = 0
    real = source_module.build
    release = asyncio.Event()

    def counted(*args: object, **kwargs: object) -> object:
        nonlocal builds
        builds += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    async def slow_incidents(now: float, at: float) -> list[IncidentRow]:
        await release.wait()  # a database read taking its time
        return []

    monkeypatch.setattr(source_module, "build", counted)  # type: ignore[attr-defined]
    monkeypatch.setattr(pages, "_incidents", slow_incidents)  # type: ignore[attr-defined]
    visitors = [asyncio.create_task(pages.view()) for _ in range(16)]
    await asyncio.sleep(0)  # every visitor is waiting now
    release.set()
    views = await asyncio.gather(*visitors)
    assert builds == 1 and all(view is views[0] for view in views)
