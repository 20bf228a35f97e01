"""The public status page's Statuspage v2 API on a real gateway: what customers felt, in
Statuspage's words and vocabulary, readable by Standby's own status-page reader."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import openai

from standby.sim import Fault, SimProvider
from standby.testing import RunningGateway, running_gateway
from standby.watch.official import Level, parse_statuspage
from tests.conftest import two_target_plan

FIXTURES = Path(__file__).resolve().parents[1] / "watch" / "official" / "fixtures"
DETECT = {"evaluate_every": "200ms", "fast_window": "2s", "open_after": 3, "resolve_after": 3}


async def get(gw: RunningGateway, path: str, **headers: str) -> tuple[int, Any, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(gw.root_url + path, headers=headers) as resp,
    ):
        body = await resp.read()
        return resp.status, json.loads(body) if body else None, resp.headers.get("ETag", "")


def plan(primary: SimProvider, backup: SimProvider) -> dict[str, Any]:
    return two_target_plan(
        primary,
        backup,
        incidents={"detect": DETECT},
        probes={"interval": "1s"},  # evidence on both targets while their breakers are open
        status_page={
            "title": "Acme AI status",
            "components": {"Chat assistant": {"routes": ["gpt-*"]}},
        },
        server={"admin_token": "admin-secret-token"},
    )


async def test_an_outage_customers_felt_is_on_the_page_in_their_words(
    primary: SimProvider, backup: SimProvider
) -> None:
    async with running_gateway(plan(primary, backup)) as gw:
        status, calm, etag = await get(gw, "/status/api/v2/summary.json")
        assert status == 200 and calm["status"]["indicator"] == "none"
        assert (await get(gw, "/status/api/v2/summary.json", **{"If-None-Match": etag}))[0] == 304

        opened: dict[str, asyncio.Event] = {"target": asyncio.Event(), "route": asyncio.Event()}
        gw.app.alerting.listeners.append(
            lambda event, incident: (
                opened[incident.component.partition(":")[0]].set() if event == "opened" else None
            )
        )
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)

        async def ask_until(event: asyncio.Event) -> None:
            async with asyncio.timeout(20.0):
                while not event.is_set():
                    with contextlib.suppress(openai.APIStatusError):
                        await client.chat.completions.create(
                            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                        )
                    await asyncio.sleep(0.1)  # the traffic's pace

        # the primary alone fails: absorbed by failing over, not an outage of the page
        primary.set_fault(Fault("error", status=503))
        await ask_until(opened["target"])
        gw.app.alerting.page.forget()  # no waiting for the page's cache
        absorbed = (await get(gw, "/status/api/v2/summary.json"))[1]

        # both fail: customers get errors — the page says so
        backup.set_fault(Fault("error", status=503))
        await ask_until(opened["route"])
        gw.app.alerting.page.forget()
        _, down, _ = await get(gw, "/status/api/v2/summary.json")
        _, unresolved, _ = await get(gw, "/status/api/v2/incidents/unresolved.json")
        _, components, _ = await get(gw, "/status/api/v2/components.json")
        _, status_doc, _ = await get(gw, "/status/api/v2/status.json")
        await client.close()
        primary.clear()
        backup.clear()

    assert [c["status"] for c in absorbed["components"]] == ["operational"]
    assert absorbed["incidents"] == []
    assert down["status"] == {"indicator": "critical", "description": "Major System Outage"}
    [component] = down["components"]
    assert component["name"] == "Chat assistant" and component["status"] == "major_outage"
    [incident] = down["incidents"]
    assert incident["name"] == "Chat assistant unavailable"
    assert incident["status"] == "investigating" and incident["impact"] == "critical"
    assert incident["incident_updates"][-1]["body"].startswith(
        "We are investigating problems with Chat assistant since "
    )
    assert unresolved["incidents"][0]["id"] == incident["id"]
    assert components["components"][0]["status"] == "major_outage"
    assert status_doc["status"]["indicator"] == "critical"
    text = json.dumps(down)
    for internal in ("primary", "backup", "gpt-4o-mini", "sk-", "attempts failed", "target"):
        assert internal not in text, internal  # no provider, model, key or detector words

    # the same vocabulary and fields as a real Statuspage page, read back by our reader
    real = json.loads((FIXTURES / "openai_summary_incidentio_2026-07.json").read_text())
    assert set(real) <= set(down)
    assert set(real["page"]) <= set(down["page"])
    assert set(real["components"][0]) <= set(component)
    maintenance = json.loads(
        (FIXTURES / "anthropic_scheduled_maintenances_2026-09.json").read_text()
    )["scheduled_maintenances"][0]
    assert set(maintenance["incident_updates"][0]) <= set(incident["incident_updates"][0])
    shared = set(maintenance) - {"scheduled_for", "scheduled_until"}
    assert shared <= set(incident)
    reading = parse_statuspage(
        json.dumps(down).encode(), source_url="x", fetched_at=0.0, components=["Chat assistant"]
    )
    assert reading.worst(["Chat assistant"]) is Level.MAJOR_OUTAGE
    assert [i.name for i in reading.incidents] == ["Chat assistant unavailable"]


async def test_the_page_is_public_and_its_maintenance_is_scheduled(
    primary: SimProvider, backup: SimProvider
) -> None:
    windows = [
        {"start": "2099-01-01T02:00:00Z", "end": "2099-01-01T03:00:00Z", "note": "Upgrade"},
        {"start": "2099-01-02T02:00:00Z", "end": "2099-01-02T03:00:00Z", "providers": ["primary"]},
    ]
    spec = plan(primary, backup)
    spec["incidents"] = {"maintenance": windows}
    async with running_gateway(spec) as gw:
        status, doc, _ = await get(gw, "/status/api/v2/scheduled-maintenances.json")
        admin, _, _ = await get(gw, "/standby/incidents")
    assert status == 200 and admin == 401  # the page is public, the admin API is not
    [window] = doc["scheduled_maintenances"]  # a provider's window is absorbed: not shown
    assert window["name"] == "Upgrade" and window["status"] == "scheduled"
    assert window["scheduled_for"] == "2099-01-01T02:00:00.000Z"
