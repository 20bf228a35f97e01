"""Notice first, tell the right people — end to end on a real gateway.

Two simulated providers behind a real gateway; a signed-webhook receiver and a
PagerDuty-shaped receiver on loopback.  The primary goes down: an incident opens, both
receivers hear of it, the primary comes back, probes close its breaker, the incident
resolves, and both hear that too, with one dedup key.  The same with no traffic at all:
probes alone notice.  Waits are on events the receivers set, bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from standby.notify.webhook import verify
from standby.sim import Fault, SimProvider
from standby.testing import RunningGateway, running_gateway
from tests.conftest import two_target_plan

SECRET = "hook-secret-for-tests"
DETECT = {
    "evaluate_every": "200ms",
    "fast_window": "2s",
    "open_after": 3,
    "resolve_after": 3,
    "min_events": 2,
}


@dataclass
class Receivers:
    url: str = ""
    hooks: list[dict[str, Any]] = field(default_factory=list)
    pagerduty: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def events(self) -> list[str]:
        return [hook["event"] for hook in self.hooks]

    async def until(self, done: Any, seconds: float = 30.0) -> None:
        """Wait (bounded) until ``done()`` holds; woken by every delivery."""
        async with asyncio.timeout(seconds):
            while not done():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def receivers() -> AsyncIterator[Receivers]:
    found = Receivers()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        signed = verify(
            SECRET,
            request.headers["X-Standby-Timestamp"],
            body,
            request.headers["X-Standby-Signature"],
            time.time(),
        )
        if not signed:
            found.bad_signatures += 1
            return web.Response(status=401)
        found.hooks.append(await request.json())
        found.changed.set()
        return web.Response(status=204)

    async def pagerduty(request: web.Request) -> web.Response:
        found.pagerduty.append(await request.json())
        found.changed.set()
        return web.json_response({"status": "success", "dedup_key": "x"}, status=202)

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/v2/enqueue", pagerduty)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    found.url = f"http://127.0.0.1:{port}"
    yield found
    await runner.cleanup()


def plan(primary: SimProvider, backup: SimProvider, receivers: Receivers) -> dict[str, Any]:
    return two_target_plan(
        primary,
        backup,
        probes={"interval": "1s", "busy": 2},
        incidents={"detect": DETECT},
        notify={
            "channels": {
                "hooks": {"kind": "webhook", "url": f"{receivers.url}/hook", "secret": SECRET},
                "oncall": {
                    "kind": "pagerduty",
                    "url": f"{receivers.url}/v2/enqueue",
                    "routing_key": "R0UTINGKEY0000000000000000000000",
                },
            },
            "escalation": [{"after": "0s", "notify": ["hooks", "oncall"]}],
        },
    )


@contextlib.asynccontextmanager
async def traffic(gw: RunningGateway, receivers: Receivers) -> AsyncIterator[list[str]]:
    """Light traffic (about 5 requests a second) while the block runs; who answered
    (each answer wakes ``receivers.until`` too)."""
    answered: list[str] = []
    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)

    async def send() -> None:
        while True:
            reply = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            answered.append(reply.headers["x-standby-provider"])
            receivers.changed.set()
            await asyncio.sleep(0.2)  # the load's pace, not a wait for anything

    task = asyncio.create_task(send())
    try:
        yield answered
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()


async def admin(gw: RunningGateway, path: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(gw.root_url + path) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_an_outage_under_traffic_opens_notifies_and_resolves(
    primary: SimProvider, backup: SimProvider, receivers: Receivers
) -> None:
    async with (
        running_gateway(plan(primary, backup, receivers)) as gw,
        traffic(gw, receivers) as answered,
    ):
        await receivers.until(lambda: len(answered) >= 5)
        assert receivers.hooks == []  # healthy: nobody hears anything
        primary.set_fault(Fault("error", status=503))
        down_at = time.time()
        await receivers.until(lambda: "opened" in receivers.events())
        opened_after = time.time() - down_at
        [incident] = (await admin(gw, "/standby/incidents?open=true"))["data"]
        assert incident["component"] == "target:primary/gpt-4o-mini"
        assert answered[-1] == "backup"  # customers were served all along
        primary.clear()
        await receivers.until(lambda: "resolved" in receivers.events())
        await receivers.until(lambda: receivers.pagerduty[-1]["event_action"] == "resolve")
        shown = await admin(gw, f"/standby/incidents/{incident['id']}")
        status = await admin(gw, "/standby/status")
        health = await admin(gw, "/standby/health")

    assert opened_after < 10.0
    assert receivers.bad_signatures == 0
    assert receivers.events()[0] == "opened" and receivers.events()[-1] == "resolved"
    assert all(hook["incident_id"] == incident["id"] for hook in receivers.hooks)
    actions = [event["event_action"] for event in receivers.pagerduty]
    assert actions[0] == "trigger" and actions[-1] == "resolve"
    assert len({event["dedup_key"] for event in receivers.pagerduty}) == 1
    assert shown["status"] == "resolved" and shown["resolved_at"] >= shown["opened_at"]
    kinds = [event["kind"] for event in shown["timeline"]]
    for expected in ("first_failure", "opened", "failover", "notified", "monitoring", "resolved"):
        assert expected in kinds, kinds
    times = [event["at"] for event in shown["timeline"]]
    assert shown["first_failure_at"] <= shown["opened_at"] and times[0] >= down_at - 1
    assert health["targets"]["primary/gpt-4o-mini"]["state"] == "closed"
    assert status["incidents"] == []


async def test_with_no_traffic_at_all_probes_alone_notice(
    primary: SimProvider, backup: SimProvider, receivers: Receivers
) -> None:
    async with running_gateway(plan(primary, backup, receivers)) as gw:
        primary.set_fault(Fault("error", status=503))
        await receivers.until(lambda: "opened" in receivers.events(), seconds=20.0)
        status = await admin(gw, "/standby/status")
        primary.clear()
        await receivers.until(lambda: "resolved" in receivers.events(), seconds=30.0)
    assert status["probes_sent"] > 0
    assert [i["component"] for i in status["incidents"]] == ["target:primary/gpt-4o-mini"]
    assert all(request.body["max_tokens"] == 1 for request in primary.requests)
