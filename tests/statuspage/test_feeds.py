"""The status page's Atom and RSS incident history on a real gateway, read by feedparser
and by Standby's own status-feed reader."""

from __future__ import annotations

import time

import aiohttp
import feedparser

from standby.sim import SimProvider
from standby.testing import running_gateway
from standby.watch.official import parse_feed
from tests.conftest import two_target_plan


async def test_history_feeds_carry_each_incident_and_its_updates(
    primary: SimProvider, backup: SimProvider
) -> None:
    plan = two_target_plan(
        primary,
        backup,
        status_page={"title": "Acme AI status", "url": "https://status.acme.example"},
    )
    async with running_gateway(plan) as gw, aiohttp.ClientSession() as session:
        manager = gw.app.alerting.manager
        incident = await manager.open(
            "gpt-4o-mini", "Slow answers", message="We are investigating slow answers."
        )
        await manager.update(incident.id, "A fix is being deployed.")
        gw.app.alerting.page.forget()

        async def get(path: str, **headers: str) -> tuple[int, bytes, str, str]:
            async with session.get(gw.root_url + path, headers=headers) as resp:
                body = await resp.read()
                return resp.status, body, resp.headers.get("ETag", ""), resp.content_type

        status, atom, etag, atom_type = await get("/status/history.atom")
        assert (await get("/status/history.atom", **{"If-None-Match": etag}))[0] == 304
        _, rss, _, rss_type = await get("/status/history.rss")
        await manager.resolve(incident.id, "Answers are fast again.")
        gw.app.alerting.page.forget()
        _, after, _, _ = await get("/status/history.atom")

    assert status == 200 and atom_type == "application/atom+xml"
    assert rss_type == "application/rss+xml"
    for body in (atom, rss):
        parsed = feedparser.parse(body)
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert parsed.feed.title == "Acme AI status - Incident History"
        [entry] = parsed.entries
        assert entry.title == "Slow answers"
        assert entry.link.startswith("https://status.acme.example/status/incidents/")
        text = entry.get("summary", "")
        assert "A fix is being deployed." in text and "investigating slow answers" in text
    # Standby's own reader of providers' feeds reads Standby's feed: open, then resolved
    reading = parse_feed(atom, source_url="x", fetched_at=time.time())
    assert [i.name for i in reading.incidents] == ["Slow answers"]
    assert "Answers are fast again." in feedparser.parse(after).entries[0].summary
