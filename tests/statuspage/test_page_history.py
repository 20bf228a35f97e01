"""The incident history (``/status/history``, twenty incidents a page) and each
incident's permalink (``/status/incidents/{id}``) in a real browser: they render, and
they link to each other and to the page."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from standby.sim import SimProvider
from standby.testing import running_gateway
from tests.statuspage.browser_support import (
    Browsing,
    acme_plan,
    chromium,
    needs_chromium,
    screenshot_of,
)

pytestmark = needs_chromium

PAST = 22  # incidents resolved: a page of twenty and two more


@pytest.fixture
async def browser() -> AsyncIterator[Browsing]:
    async with chromium() as browsing:
        yield browsing
        browsing.assert_clean()  # every page each test went to


async def test_the_history_pages_and_permalinks_link_to_each_other(
    primary: SimProvider, backup: SimProvider, browser: Browsing
) -> None:
    async with running_gateway(acme_plan(primary, backup)) as gw:
        manager = gw.app.alerting.manager
        for number in range(1, PAST + 1):
            incident = await manager.open(
                "Chat assistant", f"Incident {number:02d}", message=f"What happened {number:02d}."
            )
            await manager.resolve(incident.id, f"Fixed {number:02d}.")
        await manager.open("Chat assistant", "Incident 23", message="Still going.")
        newest_first = [f"Incident {number:02d}" for number in range(PAST + 1, 0, -1)]

        page = await browser.status_page(gw, "history-1-page")
        past = await page.locator("section[aria-labelledby=history] article h3").all_inner_texts()
        assert past == newest_first[1:11]  # the page lists the last ten resolved
        await page.get_by_role("link", name="All past incidents").click()
        await page.wait_for_url("**/status/history")
        await screenshot_of(page, "history-2-first-page")
        assert await page.locator("h1").inner_text() == "Incident history"
        assert await page.locator("article h2").all_inner_texts() == newest_first[:20]
        status, update = await page.locator("article").first.locator("p").all_inner_texts()
        assert status.startswith("Investigating · affects Chat assistant · ")
        assert update == "Still going."
        pages = page.get_by_role("navigation", name="Pages")
        assert await pages.locator("span.muted").inner_text() == "Page 1 of 2"
        assert await pages.get_by_role("link").all_inner_texts() == ["Older"]

        await pages.get_by_role("link", name="Older").click()
        await page.wait_for_url("**/status/history?page=2")
        await screenshot_of(page, "history-3-second-page")
        assert await page.locator("article h2").all_inner_texts() == newest_first[20:]
        assert await pages.locator("span.muted").inner_text() == "Page 2 of 2"
        assert await pages.get_by_role("link").all_inner_texts() == ["Newer"]
        assert await pages.get_by_role("link").get_attribute("rel") == "prev"
        first = page.locator("article").last  # the oldest of all
        assert "Resolved · affects Chat assistant" in await first.inner_text()

        # an incident's permalink, from the history, and back
        await first.get_by_role("link", name="Incident 01").click()
        await page.wait_for_url("**/status/incidents/*")
        await screenshot_of(page, "history-4-permalink")
        assert await page.title() == "Incident 01 · Acme AI status"
        assert await page.locator("h1").inner_text() == "Incident 01"
        updates = page.locator("ol.updates > li")
        assert await updates.locator("strong").all_inner_texts() == ["Resolved", "Investigating"]
        assert "Fixed 01." in await updates.first.inner_text()
        assert "What happened 01." in await updates.last.inner_text()
        permalink = page.url
        await page.get_by_role("link", name="Incident history").click()
        await page.wait_for_url("**/status/history")
        await page.get_by_role("link", name="Status", exact=True).click()
        await page.wait_for_url("**/status")
        await page.get_by_role("link", name="Incident 23").click()  # the active incident
        await page.wait_for_url("**/status/incidents/*")
        assert await page.locator("h1").inner_text() == "Incident 23"
        assert page.url != permalink

        # pages that are not there say so
        for path, status in (
            ("/status/history?page=3", 404),
            ("/status/history?page=two", 400),
            ("/status/incidents/nothing", 404),
        ):
            response = await page.request.get(gw.root_url + path)
            assert response.status == status, path
