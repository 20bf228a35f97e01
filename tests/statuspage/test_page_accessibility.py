"""The status page for everyone: axe-core finds no serious or critical violation on the
page, the incident history and an incident's own page, in the light and the dark
colour scheme; and the 90-day bar stays inside its box on a wide and a narrow screen."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from standby.sim import SimProvider
from standby.testing import running_gateway
from tests.statuspage.browser_support import (
    Browsing,
    Visit,
    acme_plan,
    busy_day,
    chromium,
    needs_chromium,
    serious_violations,
)

pytestmark = needs_chromium

BACKGROUNDS = {"light": "rgb(255, 255, 255)", "dark": "rgb(13, 17, 23)"}


async def judged(visit: Visit, url: str, screenshot: str, background: str) -> list[str]:
    """``url`` opened in ``visit``'s colour scheme, its serious violations."""
    page = await visit.open(url, screenshot)
    # the scheme took effect: contrast is checked on the colours people see
    assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == background
    assert await page.locator("html").get_attribute("lang") == "en"
    assert await page.locator("h1").count() == 1
    return await serious_violations(page)


@pytest.fixture
async def browser() -> AsyncIterator[Browsing]:
    async with chromium() as browsing:
        yield browsing
        browsing.assert_clean()  # every page each test went to


async def test_no_serious_violations_in_light_and_dark(
    primary: SimProvider, backup: SimProvider, browser: Browsing
) -> None:
    pytest.importorskip("axe_playwright_python", reason="axe-core comes with it (dev extra)")
    async with running_gateway(acme_plan(primary, backup)) as gw:
        await busy_day(gw, primary, backup)
        gw.app.alerting.page.forget()
        found = {}
        for scheme, background in BACKGROUNDS.items():
            visit = await browser.visit(color_scheme=scheme)
            url = gw.root_url + "/status"
            found[f"{scheme} page"] = await judged(visit, url, f"a11y-{scheme}-page", background)
            permalink = await visit.page.locator("article h3 a").first.get_attribute("href")
            assert permalink is not None
            for name, path in (("history", "/status/history"), ("incident", permalink)):
                url = gw.root_url + path
                found[f"{scheme} {name}"] = await judged(
                    visit, url, f"a11y-{scheme}-{name}", background
                )
        assert found == {key: [] for key in found}


@pytest.mark.parametrize("width", [1280, 360])  # a desktop, and a small phone
async def test_the_ninety_day_bar_fits_its_box(
    primary: SimProvider, backup: SimProvider, browser: Browsing, width: int
) -> None:
    async with running_gateway(acme_plan(primary, backup)) as gw:
        page = await browser.status_page(
            gw, f"bar-{width}px", viewport={"width": width, "height": 800}
        )
        component = await page.locator("ul.components > li.component").bounding_box()
        today = await page.locator("ol.bar > li").last.bounding_box()
        assert component is not None and today is not None
        assert today["x"] + today["width"] <= component["x"] + component["width"]
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
