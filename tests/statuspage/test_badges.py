"""SVG badges of the status page: the state in words, escaped, on a real gateway."""

from __future__ import annotations

from urllib.parse import quote
from xml.etree import ElementTree

import aiohttp

from standby.sim import SimProvider
from standby.statuspage.badges import badge, svg
from standby.statuspage.html import percent
from standby.testing import running_gateway
from tests.conftest import two_target_plan

SVG = "{http://www.w3.org/2000/svg}"


def test_a_badge_says_its_state_in_words_and_escapes_names() -> None:
    root = ElementTree.fromstring(svg('Chat <"assistant">', "major_outage"))
    assert root.get("aria-label") == 'Chat <"assistant">: Major outage'
    assert [t.text for t in root.iter(f"{SVG}text")] == ['Chat <"assistant">', "Major outage"]


async def test_page_and_component_badges(primary: SimProvider, backup: SimProvider) -> None:
    plan = two_target_plan(
        primary,
        backup,
        status_page={"components": {"Chat assistant": {"routes": ["gpt-*"]}}},
    )
    async with running_gateway(plan) as gw, aiohttp.ClientSession() as session:
        await gw.app.alerting.manager.open("Chat assistant", "Errors", severity="minor")
        gw.app.alerting.page.forget()
        found = {}
        for path in ("/status/badge.svg", f"/status/badge/{quote('Chat assistant')}.svg"):
            async with session.get(gw.root_url + path) as resp:
                assert resp.status == 200 and resp.content_type == "image/svg+xml"
                found[path] = ElementTree.fromstring(await resp.read()).get("aria-label")
        async with session.get(gw.root_url + "/status/badge/nothing.svg") as resp:
            missing = resp.status
    assert list(found.values()) == [
        "status: Degraded performance",
        "Chat assistant: Degraded performance",
    ]
    assert missing == 404


def test_an_uptime_badge_says_its_figure_in_words() -> None:
    root = ElementTree.fromstring(badge("Chat uptime, 30 days", percent(0.99871), "#000"))
    assert root.get("aria-label") == "Chat uptime, 30 days: 99.87 %"
    assert percent(None) == "no data" and percent(0.999999) == "99.99 %"  # never rounded up


async def test_the_uptime_badge_reads_the_journal(
    primary: SimProvider, backup: SimProvider
) -> None:
    plan = two_target_plan(
        primary,
        backup,
        status_page={"components": {"Chat assistant": {"routes": ["gpt-*"]}}},
    )
    async with running_gateway(plan) as gw, aiohttp.ClientSession() as session:
        client = f"{gw.root_url}/v1/chat/completions"
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(3):
            async with session.post(client, json=body) as resp:
                assert resp.status == 200
        await gw.app.journal_service.flush()  # type: ignore[union-attr]
        gw.app.alerting.page.forget()
        labels = {}
        for query in ("", "?window=24h", "?window=1y"):
            path = f"/status/badge/{quote('Chat assistant')}/uptime.svg{query}"
            async with session.get(gw.root_url + path) as resp:
                labels[query] = (
                    ElementTree.fromstring(await resp.read()).get("aria-label")
                    if resp.status == 200
                    else resp.status
                )
    assert labels == {
        "": "Chat assistant uptime, 30 days: 100 %",
        "?window=24h": "Chat assistant uptime, 24 hours: 100 %",
        "?window=1y": 400,
    }
