"""The chat page in Debian's Chromium against a real gateway and real sims: a question
streams, the primary is killed mid-answer and the answer completes on the backup with a
"continued" badge, a reload keeps the conversation; stop cancels the provider's stream;
search finds an old conversation; with every provider down a question is queued and
answered when one returns; and all of it works from the keyboard alone.  Screenshots
are kept in ``test-artifacts/chat/``."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page, expect

from standby.sim import Fault, SimProvider
from standby.testing import RunningGateway, running_gateway
from tests.conftest import two_target_plan
from tests.e2e.test_client_gone import WatchedSim
from tests.statuspage.browser_support import Browsing, chromium, needs_chromium

pytestmark = needs_chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "chat"
WORDS = 40
WAIT = 15_000  # ms, every wait in the page
TWO_WORDS = re.compile(r"\S+\s+\S+")  # an answer under way


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
async def sims() -> AsyncIterator[tuple[WatchedSim, SimProvider]]:
    async with (
        WatchedSim("primary", words=WORDS, chunk_delay=0.08) as primary,
        SimProvider("backup", words=WORDS, chunk_delay=0.02) as backup,
    ):
        yield primary, backup


@pytest.fixture
async def gateway(sims: tuple[WatchedSim, SimProvider]) -> AsyncIterator[RunningGateway]:
    primary, backup = sims
    plan: dict[str, Any] = two_target_plan(primary, backup, chat={"enabled": True})
    async with running_gateway(plan) as gw:
        yield gw


@pytest.fixture
async def browsing() -> AsyncIterator[Browsing]:
    async with chromium() as found:
        yield found


async def open_chat(browsing: Browsing, gw: RunningGateway) -> Page:
    visit = await browsing.visit(viewport={"width": 1200, "height": 800})
    page = visit.page
    await page.goto(f"{gw.root_url}/chat")
    await expect(page.locator("#question")).to_be_focused(timeout=WAIT)
    return page


def assert_clean(browsing: Browsing) -> None:
    """No console error, no failed request — but for one known false report: Chromium
    marks a fetch whose streamed body a page read to its end with ``getReader()`` as
    aborted (microsoft/playwright#42742); the answers' streams are read that way, and
    each test checks they ended (the answer's final state came over them)."""
    for visit in browsing.visits:
        visit.problems[:] = [
            problem
            for problem in visit.problems
            if not (
                problem.startswith("failed: ")
                and "(net::ERR_ABORTED)" in problem
                and ("/chat/api/messages " in problem or "/events " in problem)
            )
        ]
        visit.assert_clean()


def answer(page: Page) -> Any:
    return page.locator("li.message.assistant").last


async def test_an_answer_cut_mid_stream_completes_on_the_backup_and_survives_a_reload(
    sims: tuple[WatchedSim, SimProvider], gateway: RunningGateway, browsing: Browsing
) -> None:
    primary, backup = sims
    page = await open_chat(browsing, gateway)
    await page.locator("#question").fill("Write me a long answer")
    await page.keyboard.press("Enter")
    reply = answer(page)
    await expect(reply).to_have_attribute("data-state", "streaming", timeout=WAIT)
    await expect(reply.locator(".content")).to_have_text(TWO_WORDS, timeout=WAIT)  # it streams
    await shot(page, "1-streaming")
    await primary.stop()  # the primary dies mid-answer
    await expect(reply).to_have_attribute("data-state", "done", timeout=WAIT)
    await expect(reply.locator(".badge.continued")).to_be_visible()
    await expect(reply.locator(".badge.model")).to_have_text("gpt-4o-mini · backup")
    await expect(reply.locator(".content")).to_have_text(backup.expected_text())
    await shot(page, "2-continued")
    await expect(page.locator("#stop")).to_be_hidden()  # the answer's stream has ended
    await page.reload()
    reply = answer(page)
    await expect(reply.locator(".content")).to_have_text(backup.expected_text(), timeout=WAIT)
    await expect(reply.locator(".badge.continued")).to_be_visible()
    await expect(page.locator("#conversations button")).to_have_text(["Write me a long answer"])
    await shot(page, "3-after-reload")
    assert_clean(browsing)


async def test_stop_cancels_the_provider_and_keeps_the_words_so_far(
    sims: tuple[WatchedSim, SimProvider], gateway: RunningGateway, browsing: Browsing
) -> None:
    primary, _ = sims
    page = await open_chat(browsing, gateway)
    await page.locator("#question").fill("Take your time")
    await page.keyboard.press("Enter")
    reply = answer(page)
    await expect(reply.locator(".content")).to_have_text(TWO_WORDS, timeout=WAIT)
    await expect(page.locator("#stop")).to_be_visible()
    await page.keyboard.press("Escape")  # stops, from the keyboard
    await expect(reply).to_have_attribute("data-state", "stopped", timeout=WAIT)
    async with asyncio.timeout(WAIT / 1000):
        await primary.cut.wait()  # the provider's stream was closed
    assert not primary.answered.is_set()
    words = (await reply.locator(".content").text_content() or "").split()
    assert 0 < len(words) < WORDS
    await expect(reply.locator(".badge.stopped")).to_be_visible()
    await expect(page.locator("#stop")).to_be_hidden()
    await shot(page, "4-stopped")
    assert_clean(browsing)


async def test_search_finds_an_old_conversation(
    gateway: RunningGateway, browsing: Browsing
) -> None:
    async with aiohttp.ClientSession() as http:
        for question in ("How do pineapples grow?", "Plan a trip to Lisbon"):
            async with http.post(
                f"{gateway.root_url}/chat/api/messages", json={"content": question}
            ) as resp:
                await resp.read()  # the whole answer
    page = await open_chat(browsing, gateway)
    await page.keyboard.press("Tab")  # leave the question box
    await page.keyboard.press("/")
    await expect(page.locator("#search")).to_be_focused()
    await page.keyboard.type("pineapples")
    hit = page.locator("#search-results .hit")
    await expect(hit).to_have_count(1, timeout=WAIT)
    await expect(hit.locator("mark")).to_have_text(["pineapples"])
    await shot(page, "5-search")
    await hit.click()
    await expect(page.locator("#title")).to_have_text("How do pineapples grow?")
    await expect(page.locator("li.message.user .content")).to_have_text(["How do pineapples grow?"])
    assert_clean(browsing)


async def test_a_question_with_every_provider_down_waits_and_is_answered_on_return(
    sims: tuple[WatchedSim, SimProvider], gateway: RunningGateway, browsing: Browsing
) -> None:
    primary, backup = sims
    chat = gateway.app.chat
    assert chat is not None
    chat.engine.retry_every = 0.2
    for sim in (primary, backup):
        sim.set_fault(Fault("error", status=503))
    page = await open_chat(browsing, gateway)
    await page.locator("#question").fill("Are you there?")
    await page.keyboard.press("Enter")
    reply = answer(page)
    await expect(reply).to_have_attribute("data-state", "queued", timeout=WAIT)
    await expect(page.locator("#notice")).to_contain_text("answered as soon as one returns")
    await expect(page.locator("#providers .provider.down")).not_to_have_count(0, timeout=WAIT)
    await shot(page, "6-queued")
    backup.clear()
    await expect(reply).to_have_attribute("data-state", "done", timeout=WAIT)
    await expect(reply.locator(".content")).to_have_text(backup.expected_text())
    await shot(page, "7-answered-on-return")
    # the page's own requests all succeeded; the providers' failures are not its errors
    assert_clean(browsing)


async def test_the_keyboard_alone_asks_edits_and_switches_versions(
    gateway: RunningGateway, browsing: Browsing
) -> None:
    visit = await browsing.visit(viewport={"width": 1200, "height": 800})
    page = visit.page
    await page.goto(f"{gateway.root_url}/chat")
    await expect(page.locator("#question")).to_be_focused(timeout=WAIT)
    await page.keyboard.type("First question")
    await page.keyboard.press("Enter")
    await expect(answer(page)).to_have_attribute("data-state", "done", timeout=WAIT)
    # Tab from the top until the question's Edit button has focus (bounded)
    for _ in range(30):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.classList.contains('edit')"):
            break
    else:
        pytest.fail("the Edit button cannot be reached with Tab")
    await page.keyboard.press("Enter")
    box = page.locator(".edit-box")
    await expect(box).to_be_focused()
    await page.keyboard.press("Control+A")
    await page.keyboard.type("Second question")
    await page.keyboard.press("Enter")
    await expect(page.locator("li.message.user .content")).to_have_text(
        ["Second question"], timeout=WAIT
    )
    await expect(answer(page)).to_have_attribute("data-state", "done", timeout=WAIT)
    versions = page.locator("li.message.user .versions")
    await expect(versions).to_contain_text("2 / 2")
    await versions.get_by_role("button", name="Previous version").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("li.message.user .content")).to_have_text(["First question"])
    await expect(page.locator("li.message.user .versions")).to_contain_text("1 / 2")
    await shot(page, "8-versions")
    assert_clean(browsing)
