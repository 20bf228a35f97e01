"""The public status page in a real browser: Playwright driving Debian's Chromium against
a real gateway, in each state, with screenshots kept in ``test-artifacts/status-page/``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from standby.sim import SimProvider
from standby.testing import RunningGateway, running_gateway
from tests.conftest import two_target_plan

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "status-page"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)"
)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        await launched.close()


async def visit(browser: Any, gw: RunningGateway, name: str, *, javascript: bool = True) -> Any:
    context = await browser.new_context(java_script_enabled=javascript)
    page = await context.new_page()
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    gw.app.alerting.page.forget()  # the page as it is now, not as cached 2 s ago
    response = await page.goto(f"{gw.root_url}/status")
    assert response is not None and response.status == 200
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert errors == []
    return page


async def test_the_page_in_each_state(
    primary: SimProvider, backup: SimProvider, browser: Any
) -> None:
    plan = two_target_plan(
        primary,
        backup,
        status_page={
            "title": "Acme AI status",
            "components": {"Chat assistant": {"routes": ["gpt-*"], "description": "In the app"}},
        },
    )
    async with running_gateway(plan) as gw:
        calm = await visit(browser, gw, "1-operational")
        assert await calm.locator("h1").inner_text() == "Acme AI status"
        assert "All Systems Operational" in await calm.get_by_role("status").inner_text()
        assert "Operational" in await calm.locator("ul.components li").inner_text()
        assert await calm.get_by_text("No incidents reported.").count() == 1

        manager = gw.app.alerting.manager
        incident = await manager.open(
            "Chat assistant",
            "Answers fail for some users",
            message="We are investigating elevated errors in the chat assistant.",
        )
        await manager.update(incident.id, "A fix is being deployed; expect recovery by 14:30 UTC.")
        down = await visit(browser, gw, "2-major-outage")
        assert "Major System Outage" in await down.get_by_role("status").inner_text()
        assert "Major outage" in await down.locator("ul.components li").inner_text()
        active = down.locator("section[aria-labelledby=active] article")
        assert await active.count() == 1
        text = await active.inner_text()
        assert "Answers fail for some users" in text and "expect recovery by 14:30 UTC" in text
        for internal in ("primary", "backup", "gpt-4o-mini"):
            assert internal not in await down.content()
        await down.keyboard.press("Tab")  # the incident's permalink takes the focus
        focused = await down.evaluate("document.activeElement.textContent")
        assert focused == "Answers fail for some users"

        quiet = await visit(browser, gw, "3-major-outage-no-javascript", javascript=False)
        assert "Major System Outage" in await quiet.get_by_role("status").inner_text()

        await manager.resolve(incident.id, "Resolved: answers are back to normal.")
        after = await visit(browser, gw, "4-resolved")
        assert "All Systems Operational" in await after.get_by_role("status").inner_text()
        history = await after.locator("section[aria-labelledby=history]").inner_text()
        assert "Answers fail for some users" in history and "Resolved" in history


async def test_what_a_person_writes_is_escaped(
    primary: SimProvider, backup: SimProvider, browser: Any
) -> None:
    plan = two_target_plan(primary, backup, status_page={"title": "Status"})
    async with running_gateway(plan) as gw:
        await gw.app.alerting.manager.open(
            "gpt-4o-mini", "<script>alert(1)</script>", message="<img src=x onerror=alert(2)>"
        )
        page = await visit(browser, gw, "5-escaped")
        assert await page.locator("script").count() == 0
        assert await page.locator("img").count() == 0
        assert "<script>alert(1)</script>" in await page.locator("article h3").inner_text()
