"""A provider's official status page, served on loopback in Statuspage v2's shape, read by
a real gateway: a declared major outage demotes the target before any request fails and
opens Standby's incident with the provider's own words attached; 'operational' restores
it.  The page is polled on demand (``poll_once``) rather than waited for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from aiohttp import web

from standby.sim import SimProvider
from standby.testing import running_gateway
from tests.conftest import two_target_plan


def summary(status: str, incidents: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "page": {"id": "p", "name": "Primary AI", "url": "https://status.example.com"},
        "status": {"indicator": "none" if status == "operational" else "critical"},
        "components": [
            {"id": "c1", "name": "Chat Completions", "status": status},
            {"id": "c2", "name": "Fine-tuning", "status": "operational"},
        ],
        "incidents": incidents,
        "scheduled_maintenances": [],
    }


OUTAGE = {
    "id": "inc1",
    "name": "Elevated error rates on Chat Completions",
    "status": "identified",
    "impact": "critical",
    "created_at": "2026-12-03T10:00:00Z",
    "shortlink": "https://stspg.io/inc1",
    "components": [{"name": "Chat Completions"}],
    "incident_updates": [
        {
            "status": "identified",
            "body": "We have identified the cause and expect recovery within 30 minutes.",
            "created_at": "2026-12-03T10:05:00Z",
        }
    ],
}


class Page:
    def __init__(self) -> None:
        self.body = summary("operational", [])
        self.url = ""


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    found = Page()

    async def serve(request: web.Request) -> web.Response:
        return web.json_response(found.body)

    app = web.Application()
    app.router.add_get("/api/v2/summary.json", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    found.url = f"http://127.0.0.1:{port}/api/v2/summary.json"
    yield found
    await runner.cleanup()


async def test_a_declared_outage_demotes_the_target_and_opens_an_incident(
    primary: SimProvider, backup: SimProvider, page: Page
) -> None:
    plan = two_target_plan(primary, backup)
    plan["providers"]["primary"]["status_page"] = {
        "url": page.url,
        "components": ["Chat Completions"],
    }
    async with running_gateway(plan) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        watcher = gw.app.alerting.watchers["primary"]

        async def ask() -> str:
            reply = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            return str(reply.headers["x-standby-provider"])

        await watcher.poll_once()
        assert await ask() == "primary"
        page.body = summary("major_outage", [OUTAGE])
        await watcher.poll_once()
        served = len(primary.requests)
        assert [await ask() for _ in range(5)] == ["backup"] * 5
        assert len(primary.requests) == served  # demoted before any request failed
        [incident] = gw.app.alerting.manager.open_incidents()
        status = gw.app.alerting.status()
        page.body = summary("operational", [])
        await watcher.poll_once()
        assert await ask() == "primary"
        assert gw.app.alerting.manager.open_incidents() == []
        await client.close()

    assert incident.component == "target:primary/gpt-4o-mini" and incident.source == "official"
    assert incident.status == "identified"  # the provider acknowledged it
    assert incident.official is not None
    [declared] = incident.official["incidents"]
    assert declared["name"] == "Elevated error rates on Chat Completions"
    assert "30 minutes" in (declared["eta"] or "")
    assert status["official"]["primary"]["indicator"] == "major_outage"
    assert status["demoted"] == ["primary/gpt-4o-mini"]
