"""What the status page's browser tests share: Debian's Chromium driven by Playwright, a
visit that keeps a screenshot and fails on any console error or failed request, the
keyboard's path through a page, axe-core's verdict, and the customers' traffic that the
tests send through the gateway and count themselves.

The page is server-rendered and has no script of its own, so a visit waits for nothing
but the load that ``goto`` already waits for.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
from playwright.async_api import Browser, Page, async_playwright

from standby.sim import Fault, SimProvider
from standby.testing import RunningGateway
from tests.conftest import two_target_plan

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "status-page"

COMPONENTS = {"Chat assistant": {"routes": ["gpt-*"], "description": "In the app"}}

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)"
)


async def screenshot_of(page: Page, name: str) -> None:
    """Keep the whole of ``page`` as ``test-artifacts/status-page/{name}.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@dataclass
class Visit:
    """One page in one browser context, with everything that went wrong while it was
    shown, whatever it navigated to: console errors, uncaught errors, requests that
    failed or were refused."""

    page: Page
    problems: list[str] = field(default_factory=list)

    async def open(self, url: str, screenshot: str) -> Page:
        """Go to ``url`` (a 200), keep a full-page screenshot named ``screenshot``."""
        response = await self.page.goto(url)
        assert response is not None and response.status == 200, url
        await screenshot_of(self.page, screenshot)
        return self.page

    def assert_clean(self) -> None:
        assert self.problems == [], self.problems

    def watch(self) -> None:
        page, problems = self.page, self.problems
        page.on(
            "console",
            lambda message: (
                problems.append(f"console: {message.text}") if message.type == "error" else None
            ),
        )
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "requestfailed",
            lambda request: problems.append(f"failed: {request.url} ({request.failure})"),
        )
        page.on(
            "response",
            lambda response: (
                problems.append(f"{response.status}: {response.url}")
                if response.status >= 400
                else None
            ),
        )


class Browsing:
    """Debian's Chromium and every page it showed in a test (``assert_clean`` checks
    them all: no console error, no failed request, on any page they went to)."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.visits: list[Visit] = []

    async def visit(self, **options: Any) -> Visit:
        """A page in a new context made with ``options`` (``java_script_enabled``,
        ``color_scheme``, ``viewport``…)."""
        context = await self.browser.new_context(**options)
        visit = Visit(await context.new_page())
        visit.watch()
        self.visits.append(visit)
        return visit

    async def status_page(
        self, gw: RunningGateway, screenshot: str, *, path: str = "/status", **options: Any
    ) -> Page:
        """``path`` of the gateway's page as it is now (not as cached a second ago), in
        a new context made with ``options``, free of problems so far."""
        visit = await self.visit(**options)
        gw.app.alerting.page.forget()
        page = await visit.open(gw.root_url + path, screenshot)
        visit.assert_clean()
        return page

    def assert_clean(self) -> None:
        for visit in self.visits:
            visit.assert_clean()


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browsing]:
    """Debian's Chromium, headless, for the length of the ``async with``."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield Browsing(browser)
        finally:
            await browser.close()


def percent(served: int, requests: int) -> str:
    """An uptime as the page writes it (two decimals at most, "99.99 %" rather than a
    rounded-away failure), computed here from counts the test made itself."""
    shown = f"{served * 100 / requests:.2f}".rstrip("0").rstrip(".")
    if shown == "100" and served < requests:
        shown = "99.99"
    return f"{shown} %"


@dataclass(frozen=True, slots=True)
class Focus:
    """The focused element after one Tab: what it is, and how its focus shows."""

    tag: str
    text: str
    outline_style: str
    outline_width: float


async def tab_through(page: Page, stops: int) -> list[Focus]:
    """Load ``page`` afresh and press Tab ``stops`` times from its top, noting each
    focused element (a fresh load: a blur would leave the browser's starting point of
    focus navigation where it was)."""
    await page.reload()
    found = []
    for _ in range(stops):
        await page.keyboard.press("Tab")
        seen = await page.evaluate(
            """() => {
                const el = document.activeElement;
                const style = getComputedStyle(el);
                return [el.tagName.toLowerCase(), el.textContent.trim(),
                        style.outlineStyle, parseFloat(style.outlineWidth) || 0];
            }"""
        )
        found.append(Focus(*seen))
    return found


async def focusable(page: Page) -> list[tuple[str, str]]:
    """(tag, text) of every link and disclosure of ``page``, in the document's order."""
    found = await page.eval_on_selector_all(
        "a[href], summary",
        "els => els.map(el => [el.tagName.toLowerCase(), el.textContent.trim()])",
    )
    return [(tag, text) for tag, text in found]


async def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations of ``page``, one line per element."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    return [
        f"{violation['id']} ({violation['impact']}): {', '.join(node['target'])}: "
        f"{node.get('failureSummary', '')}"
        for violation in results.response["violations"]
        if violation["impact"] in ("serious", "critical")
        for node in violation["nodes"]
    ]


@dataclass
class Traffic:
    """Customers' requests through the gateway with the official ``openai`` SDK, each
    counted here as served or failed: the figures the page must show."""

    client: openai.AsyncOpenAI
    served: int = 0
    failed: int = 0

    @classmethod
    def to(cls, gw: RunningGateway) -> Traffic:
        return cls(openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0))

    @property
    def requests(self) -> int:
        return self.served + self.failed

    async def ask(self) -> bool:
        """One request; True when it was answered."""
        try:
            await self.client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        except openai.APIStatusError as exc:
            # a client error (4xx but 429) is not the service's failure: the page does
            # not count it, and these tests never send one
            assert exc.status_code >= 500 or exc.status_code == 429, exc
            self.failed += 1
            return False
        self.served += 1
        return True

    async def close(self) -> None:
        await self.client.close()


def acme_plan(primary: SimProvider, backup: SimProvider, **overrides: Any) -> dict[str, Any]:
    """primary → backup behind one public component, "Chat assistant"."""
    page = {"title": "Acme AI status", "components": COMPONENTS}
    return two_target_plan(primary, backup, status_page=page, **overrides)


async def busy_day(gw: RunningGateway, primary: SimProvider, backup: SimProvider) -> Traffic:
    """A page with everything on it: five requests served and two failed (both providers
    down for them), in the journal; an incident resolved, one still open and updated."""
    traffic = Traffic.to(gw)
    for _ in range(5):
        assert await traffic.ask()
    primary.set_fault(Fault("error", status=503))
    backup.set_fault(Fault("error", status=503))
    for _ in range(2):
        assert not await traffic.ask()
    primary.clear()
    backup.clear()
    await traffic.close()
    assert gw.app.journal_service is not None
    await gw.app.journal_service.flush()
    manager = gw.app.alerting.manager
    past = await manager.open(
        "Chat assistant", "Sign-in errors", message="Some people cannot sign in."
    )
    await manager.resolve(past.id, "Everyone can sign in again.")
    now = await manager.open(
        "Chat assistant",
        "Answers fail for some users",
        message="We are investigating elevated errors in the chat assistant.",
    )
    await manager.update(now.id, "A fix is being deployed.", status="identified")
    return traffic
