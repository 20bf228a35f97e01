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
    acme_plan,
    busy_day,
    chromium,
    needs_chromium,
    serious_violations,
)

pytestmark = needs_chromium

BACKGROUNDS = {"light": "rgb(255, 255, 255)", "dark": "rgb(13, 17, 23)"}
WIDE = (
    "base.html: `ul.components li` (a descendant selector) also styles the bar's cells, "
    "giving each 1rem of padding each side: 90 cells need ~3,000 px and overflow the "
    "component (`ul.components > li` would not)"
)
NARROW = (
    "base.html: 90 cells of min-width 2px with 2px gaps need 358 px; a 360 px screen "
    "leaves the bar 294 px, so the page scrolls sideways (WCAG 1.4.10 reflow)"
)


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
        found = {}
        for scheme, background in BACKGROUNDS.items():
            visit = await browser.visit(color_scheme=scheme)
            gw.app.alerting.page.forget()
            page = await visit.open(f"{gw.root_url}/status", f"a11y-{scheme}-page")
            incident = await page.locator("article h3 a").first.get_attribute("href")
            assert incident is not None
            for name, path in (
                ("page", "/status"),
                ("history", "/status/history"),
                ("incident", incident),
            ):
                if name != "page":
                    await visit.open(f"{gw.root_url}{path}", f"a11y-{scheme}-{name}")
                # the scheme took effect: contrast is checked on the colours people see
                assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == (
                    background
                )
                assert await page.locator("html").get_attribute("lang") == "en"
                assert await page.locator("h1").count() == 1
                found[f"{scheme} {path}"] = await serious_violations(page)
        assert found == {key: [] for key in found}


@pytest.mark.parametrize(
    "width",
    [
        pytest.param(1280, marks=pytest.mark.xfail(strict=True, reason=WIDE)),
        pytest.param(360, marks=pytest.mark.xfail(strict=True, reason=NARROW)),
    ],
)
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
