"""The public status page in a real browser: Playwright driving Debian's Chromium against
a real gateway, in each state, with screenshots kept in ``test-artifacts/status-page/``.

The outage is a real one: customers' requests through the official ``openai`` SDK, both
providers failing, the detector opening the incident; the page's figures are checked
against the requests the test sent and counted itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Page

from standby.incidents.manager import IncidentManager
from standby.journal.incident_store import IncidentRow
from standby.sim import Fault, SimProvider
from standby.testing import RunningGateway, running_gateway
from tests.conftest import two_target_plan
from tests.statuspage.browser_support import (
    COMPONENTS,
    Browsing,
    Traffic,
    chromium,
    needs_chromium,
    percent,
    screenshot_of,
)

pytestmark = needs_chromium

DETECT = {"evaluate_every": "200ms", "fast_window": "2s", "open_after": 3, "resolve_after": 3}
INTERNAL = ("primary", "backup", "gpt-4o-mini", "sk-", "target", "attempts failed")


@pytest.fixture
async def browser() -> AsyncIterator[Browsing]:
    async with chromium() as browsing:
        yield browsing
        browsing.assert_clean()  # every page each test went to


def plan(
    primary: SimProvider, backup: SimProvider, maintenance: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return two_target_plan(
        primary,
        backup,
        incidents={"detect": DETECT, "maintenance": maintenance or []},
        probes={"interval": "1s"},  # evidence on both targets while their breakers are open
        status_page={"title": "Acme AI status", "components": COMPONENTS},
    )


async def banner(page: Page) -> str:
    return await page.get_by_role("status").inner_text()


async def component_state(page: Page) -> str:
    return await page.locator("ul.components > li.component .state").inner_text()


async def today(page: Page) -> str:
    """The UTC date of the page's own "Updated" time (not the test's, at midnight)."""
    updated = await page.locator("footer time").get_attribute("datetime")
    assert updated is not None
    return updated[:10]


class Incidents:
    """The incidents the gateway opens and resolves, as events a test can wait for."""

    def __init__(self, gw: RunningGateway) -> None:
        self.events: dict[tuple[str, str], asyncio.Event] = {}
        self.rows: dict[str, IncidentRow] = {}
        gw.app.alerting.listeners.append(self._heard)

    def _heard(self, event: str, incident: IncidentRow) -> None:
        self.rows[incident.component] = incident
        self.event(event, incident.component).set()

    def event(self, event: str, component: str) -> asyncio.Event:
        return self.events.setdefault((event, component), asyncio.Event())


async def fail_until(traffic: Traffic, event: asyncio.Event) -> None:
    """Customers keep asking (every request failing) until ``event``, 20 s at most."""
    async with asyncio.timeout(20.0):
        while not event.is_set():
            assert not await traffic.ask()
            with contextlib.suppress(TimeoutError):  # the traffic's pace, or the event
                await asyncio.wait_for(event.wait(), 0.05)


async def test_the_page_through_an_outage(
    primary: SimProvider, backup: SimProvider, browser: Browsing
) -> None:
    async with running_gateway(plan(primary, backup)) as gw:
        manager: IncidentManager = gw.app.alerting.manager
        incidents = Incidents(gw)
        calm = await browser.status_page(gw, "1-operational")
        assert await calm.locator("h1").inner_text() == "Acme AI status"
        assert await calm.title() == "Acme AI status"
        assert "All Systems Operational" in await banner(calm)
        assert await component_state(calm) == "Operational"
        assert "In the app" in await calm.locator("ul.components > li.component").inner_text()
        assert await calm.get_by_text("No incidents reported.").count() == 1
        assert await calm.locator("section[aria-labelledby=active]").count() == 0

        # degraded: a person's incident of minor impact, with an update
        slow = await manager.open(
            "Chat assistant",
            "Slower answers than usual",
            severity="minor",
            message="Some answers take longer than usual; we are looking into it.",
        )
        await manager.update(
            slow.id, "We found the cause and are rolling out a fix.", status="identified"
        )
        degraded = await browser.status_page(gw, "2-degraded")
        assert "Minor Service Outage" in await banner(degraded)
        assert await component_state(degraded) == "Degraded performance"
        [active] = await degraded.locator("section[aria-labelledby=active] article").all()
        assert await active.locator("h3").inner_text() == "Slower answers than usual"
        assert "Identified · affects Chat assistant" in await active.locator("p").inner_text()
        assert await active.locator("ol.updates li strong").all_inner_texts() == [
            "Identified",
            "Investigating",
        ]
        updates = await active.locator("ol.updates").inner_text()
        assert "We found the cause and are rolling out a fix." in updates
        assert "Some answers take longer than usual; we are looking into it." in updates
        await manager.resolve(slow.id, "Answers are fast again.")

        # customers are served, then both providers fail: a real outage, detected
        traffic = Traffic.to(gw)
        for _ in range(12):
            assert await traffic.ask()
        primary.set_fault(Fault("error", status=503))
        backup.set_fault(Fault("error", status=503))
        await fail_until(traffic, incidents.event("opened", "route:gpt-4o-mini"))
        route = incidents.rows["route:gpt-4o-mini"]
        assert manager.open_for("target:primary/gpt-4o-mini") is not None
        # the provider's own page declares the incident and an estimate of restoration
        await manager.official(
            "primary",
            [{"name": "Elevated error rates", "status": "identified", "eta": "15:30 UTC"}],
            "major",
        )
        await manager.update(
            route.id, "We are working with our provider on a fix.", status="identified"
        )
        await traffic.close()
        assert gw.app.journal_service is not None
        await gw.app.journal_service.flush()  # every request counted in the figures

        down = await browser.status_page(gw, "3-major-outage")
        assert "Major System Outage" in await banner(down)
        assert await component_state(down) == "Major outage"
        [active] = await down.locator("section[aria-labelledby=active] article").all()
        assert await active.locator("h3").inner_text() == "Chat assistant unavailable"
        assert await active.locator("p.muted").inner_text() == (
            "Identified · affects Chat assistant · Estimated restoration: 15:30 UTC"
        )
        updates = await active.locator("ol.updates > li").all_inner_texts()
        assert updates[0].startswith("Identified — We are working with our provider on a fix.")
        assert updates[-1].startswith(
            "Investigating — We are investigating problems with Chat assistant since "
        )
        html = await down.content()
        for internal in (*INTERNAL, "Elevated error rates"):
            assert internal not in html, internal
        past = down.locator("section[aria-labelledby=history] article")
        assert await past.locator("h3").all_inner_texts() == ["Slower answers than usual"]
        assert (await past.locator("p").inner_text()).startswith("Resolved · ")

        # today's cell of the 90-day bar and the uptime: the requests this test sent
        date = await today(down)
        uptime = percent(traffic.served, traffic.requests)
        cells = down.locator("ol.bar > li")
        assert await cells.count() == 90
        cell = cells.last
        assert await cell.get_attribute("data-date") == date
        assert await cell.get_attribute("data-state") == "major_outage"
        said = (
            f"{date}: Major outage, {uptime} of {traffic.requests:,} requests served well"
            f" ({traffic.failed:,} failed, 0 slow); Chat assistant unavailable;"
            " Slower answers than usual"
        )
        assert await cell.text_content() == said
        assert await cell.get_attribute("title") == said
        earlier = await cells.evaluate_all("cells => cells.slice(0, -1).map(c => c.dataset.state)")
        assert set(earlier) == {"no_data"}  # the journal has nothing before today
        day_before = (datetime.fromisoformat(date) - timedelta(days=1)).date().isoformat()
        assert await cells.nth(88).get_attribute("data-date") == day_before
        for window, words in (("24h", "24 hours"), ("7d", "7 days"), ("90d", "90 days")):
            shown = await down.locator(f"[data-window='{window}']").inner_text()
            assert shown == f"{words} {uptime}"

        # the same page without JavaScript: server-rendered, nothing missing
        plain = await browser.status_page(
            gw, "4-major-outage-no-javascript", java_script_enabled=False
        )
        assert (
            await plain.locator("header").inner_text() == await down.locator("header").inner_text()
        )
        for section in await down.locator("main > section").all():
            label = await section.get_attribute("aria-labelledby")
            assert await plain.locator(f"section[aria-labelledby={label}]").inner_text() == (
                await section.inner_text()
            )
        await plain.get_by_text("Daily figures for Chat assistant").click()  # no script
        assert await plain.locator("details tbody tr").first.locator("th").inner_text() == date

        # the incident's permalink, and the history it links to
        await down.get_by_role("link", name="Chat assistant unavailable").click()
        await down.wait_for_url("**/status/incidents/*")
        await screenshot_of(down, "5-incident-during-outage")
        assert await down.locator("h1").inner_text() == "Chat assistant unavailable"
        assert "Estimated restoration: 15:30 UTC" in await down.locator("article").inner_text()
        await down.get_by_role("link", name="Incident history").click()
        await down.wait_for_url("**/status/history")
        assert await down.locator("article h2").all_inner_texts() == [
            "Chat assistant unavailable",
            "Slower answers than usual",
        ]

        # the providers recover; the detector resolves the incident
        primary.clear()
        backup.clear()
        async with asyncio.timeout(20.0):
            await incidents.event("resolved", "route:gpt-4o-mini").wait()
        after = await browser.status_page(gw, "6-resolved")
        assert "All Systems Operational" in await banner(after)
        assert await component_state(after) == "Operational"
        assert await after.locator("section[aria-labelledby=active]").count() == 0
        history = after.locator("section[aria-labelledby=history] article")
        assert await history.locator("h3").all_inner_texts() == [
            "Chat assistant unavailable",
            "Slower answers than usual",
        ]
        assert await after.locator("ol.bar > li").last.get_attribute("data-state") == (
            "major_outage"  # the day keeps its worst
        )
        await after.get_by_role("link", name="Chat assistant unavailable").click()
        await after.wait_for_url("**/status/incidents/*")
        await screenshot_of(after, "7-incident-resolved")
        body = await after.locator("article").inner_text()
        assert "Resolved · affects Chat assistant" in body
        assert "Resolved — This incident has been resolved: Chat assistant is working" in body
        assert "Estimated restoration" not in body  # an estimate only while it is open
        assert await after.locator("header time").count() == 2  # from … to


async def test_a_maintenance_window_is_announced(
    primary: SimProvider, backup: SimProvider, browser: Browsing
) -> None:
    now = datetime.now(UTC)
    window = {
        "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
        "note": "Database upgrade",
    }
    later = {
        "start": "2099-01-01T02:00:00Z",
        "end": "2099-01-01T03:00:00Z",
        "note": "Network upgrade",
    }
    mine = {"start": window["start"], "end": window["end"], "providers": ["primary"]}
    spec = plan(primary, backup, [window, later, mine])
    async with running_gateway(spec) as gw:
        page = await browser.status_page(gw, "8-maintenance")
        assert "Service Under Maintenance" in await banner(page)
        assert await component_state(page) == "Under maintenance"
        windows = page.locator("section[aria-labelledby=maintenance] article")
        assert await windows.locator("h3").all_inner_texts() == [
            "Database upgrade",
            "Network upgrade",
        ]  # the window of one provider is absorbed by failing over: not shown
        assert "In progress" in await windows.first.inner_text()
        assert "Scheduled · Jan 01, 02:00 UTC to Jan 01, 03:00 UTC" in (
            await windows.last.inner_text()
        )
        # announced downtime is not an outage: its hours are left out of the uptime
        assert await page.locator("[data-window='24h']").inner_text() == "24 hours no data"
        cell = page.locator("ol.bar > li").last
        assert await cell.get_attribute("data-state") == "under_maintenance"
        assert await cell.text_content() == (
            f"{await today(page)}: Under maintenance, no requests; scheduled maintenance"
        )


async def test_what_a_person_writes_is_escaped(
    primary: SimProvider, backup: SimProvider, browser: Browsing
) -> None:
    plan = two_target_plan(primary, backup, status_page={"title": "Status"})
    async with running_gateway(plan) as gw:
        await gw.app.alerting.manager.open(
            "gpt-4o-mini", "<script>alert(1)</script>", message="<img src=x onerror=alert(2)>"
        )
        page = await browser.status_page(gw, "9-escaped")
        assert await page.locator("script").count() == 0
        assert await page.locator("img").count() == 0
        assert "<script>alert(1)</script>" in await page.locator("article h3").inner_text()
