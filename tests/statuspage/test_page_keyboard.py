"""The status page with the keyboard alone: Tab reaches every link and disclosure in
the order they are read, the focus always shows, and the daily figures open with Enter
or Space — their numbers those of the requests the test sent through the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from standby.sim import SimProvider
from standby.testing import running_gateway
from tests.statuspage.browser_support import (
    Browsing,
    acme_plan,
    busy_day,
    chromium,
    focusable,
    needs_chromium,
    percent,
    screenshot_of,
    tab_through,
)

pytestmark = needs_chromium

STOPS = [
    ("summary", "Daily figures for Chat assistant"),
    ("a", "Answers fail for some users"),  # the active incident's permalink
    ("a", "Sign-in errors"),  # a past one's
    ("a", "All past incidents"),
    ("a", "Status"),
    ("a", "Incident history"),
    ("a", "API"),
    ("a", "Atom"),
    ("a", "RSS"),
    ("a", "Subscribe to updates"),
]


@pytest.fixture
async def browser() -> AsyncIterator[Browsing]:
    async with chromium() as browsing:
        yield browsing
        browsing.assert_clean()  # every page each test went to


async def test_tab_reaches_every_link_and_disclosure_with_a_visible_focus(
    primary: SimProvider, backup: SimProvider, browser: Browsing
) -> None:
    async with running_gateway(acme_plan(primary, backup)) as gw:
        traffic = await busy_day(gw, primary, backup)
        page = await browser.status_page(gw, "keyboard-1-page")
        assert await focusable(page) == STOPS  # the document's order is the reading order

        stops = await tab_through(page, len(STOPS))
        assert [(stop.tag, stop.text) for stop in stops] == STOPS
        for stop in stops:
            assert stop.outline_style != "none" and stop.outline_width >= 2, stop

        # from the top again: the first stop is the disclosure; Enter opens it
        await tab_through(page, 1)
        details = page.locator("ul.components details")
        table = details.locator("table")
        assert await details.get_attribute("open") is None
        assert not await table.is_visible()
        await page.keyboard.press("Enter")
        assert await details.get_attribute("open") == ""
        assert await table.is_visible()
        await screenshot_of(page, "keyboard-2-daily-figures")
        assert await table.locator("thead th").all_inner_texts() == [
            "Day",
            "State",
            "Served well",
            "Requests",
            "Failed",
            "Slow",
        ]
        [today] = await table.locator("tbody tr").all()  # the only day with figures
        date = await page.locator("ol.bar > li").last.get_attribute("data-date")
        assert await today.locator("th, td").all_inner_texts() == [
            date,
            "Major outage",  # an incident of major impact is open today
            percent(traffic.served, traffic.requests),
            str(traffic.requests),
            str(traffic.failed),
            "0",
        ]
        assert await page.locator("[data-window='24h']").inner_text() == (
            f"24 hours {percent(traffic.served, traffic.requests)}"
        )
        # Space closes it and opens it again
        await page.keyboard.press("Space")
        assert await details.get_attribute("open") is None
        await page.keyboard.press("Space")
        assert await table.is_visible()

        # Enter on the incident's permalink follows it
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        await page.wait_for_url("**/status/incidents/*")
        assert await page.locator("h1").inner_text() == "Answers fail for some users"
