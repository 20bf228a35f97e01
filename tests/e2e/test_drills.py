"""Drills against a running gateway: the fault is injected inside Standby (the real
provider never sees it), the plan holds, the verdict is pass; an impossible objective
gives fail with the reason; the public page and its feeds saw nothing, and the
notifications said "[DRILL]".  And ``standby drill`` from the command line.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp
import openai

from standby.sim import SimProvider
from standby.testing import RunningGateway, running_gateway
from tests.e2e.test_incidents import DETECT, Receivers, receivers
from tests.e2e.test_incidents import plan as incident_plan

__all__ = ["receivers"]  # the webhook receivers' fixture, shared with the incidents' tests

TARGET = "primary/gpt-4o-mini"
DURATION = 3.0  # seconds of fault


def drill_plan(
    primary: SimProvider, backup: SimProvider, hooks: Receivers, **objectives: Any
) -> dict[str, Any]:
    # probes on (their tries meet the fault too): they see the target healthy once the
    # drill ends, so its incident resolves without waiting for traffic
    plan = incident_plan(primary, backup, hooks)
    plan["incidents"] = {"detect": DETECT}
    plan["drills"] = {"objectives": objectives, "settle": "20s"}
    return plan


async def _admin(
    http: aiohttp.ClientSession, gw: RunningGateway, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(method, f"{gw.root_url}{path}", json=body) as resp:
        return resp.status, await resp.json(content_type=None)


async def _drive(gw: RunningGateway, seconds: float) -> list[str]:
    """Requests through the SDK while the fault lasts: who answered each."""
    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    answered: list[str] = []
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    try:
        while loop.time() < until:
            reply = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            answered.append(reply.headers["x-standby-provider"])
            await asyncio.sleep(0.1)  # the load's pace, not a wait for anything
    finally:
        await client.close()
    return answered


async def _done(http: aiohttp.ClientSession, gw: RunningGateway, drill_id: str) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while True:
            _, drill = await _admin(http, gw, "GET", f"/standby/drills/{drill_id}")
            if drill["state"] in ("done", "failed"):
                return dict(drill)
            await asyncio.sleep(0.2)  # the drill settles on its own clock: poll, bounded


async def test_an_outage_drill_holds_and_passes_and_the_public_saw_nothing(
    primary: SimProvider, backup: SimProvider, receivers: Receivers
) -> None:
    plan = drill_plan(
        primary,
        backup,
        receivers,
        max_failed_requests=0,
        max_time_to_failover="5s",
        max_time_to_notify="20s",
    )
    async with running_gateway(plan) as gw, aiohttp.ClientSession() as http:
        status, drill = await _admin(
            http,
            gw,
            "POST",
            "/standby/drills",
            {"target": TARGET, "fault": "outage", "duration": DURATION},
        )
        assert status == 201, drill
        assert drill["routes"] == ["gpt-4o-mini"] and drill["state"] == "running"
        before = len(primary.requests)
        answered = await _drive(gw, DURATION - 0.5)
        assert answered and set(answered) == {"backup"}  # every request held
        during = len(primary.requests) - before
        assert during == 0, "the real provider is never touched by an outage drill"
        drill = await _done(http, gw, drill["id"])
        assert drill["state"] == "done", drill
        verdict = drill["verdict"]
        assert verdict["passed"], verdict
        assert {c["objective"] for c in verdict["checks"]} == {
            "max_failed_requests",
            "max_time_to_failover",
            "max_time_to_notify",
        }
        # the detector opened the drill's incident, said so, and the hooks heard "[DRILL]"
        assert drill["incidents"], "the drill's failures opened an incident"
        _, incident = await _admin(http, gw, "GET", f"/standby/incidents/{drill['incidents'][0]}")
        assert incident["title"].startswith("[DRILL] ") and incident["source"] == "drill"
        assert all(h["title"].startswith("[DRILL] ") for h in receivers.hooks)
        # the public page: operational, no incident of the drill, in any document
        async with http.get(f"{gw.root_url}/status/api/v2/summary.json") as resp:
            summary = await resp.json()
        assert summary["status"]["indicator"] == "none"
        async with http.get(f"{gw.root_url}/status/api/v2/incidents.json") as resp:
            assert (await resp.json())["incidents"] == []
        async with http.get(f"{gw.root_url}/status/history.atom") as resp:
            assert "DRILL" not in await resp.text()
        # and its report, in every format
        url = f"/standby/drills/{drill['id']}/report?format=markdown"
        async with http.get(f"{gw.root_url}{url}") as resp:
            assert resp.status == 200 and "DRILL" in await resp.text()  # (escaped [ ])


async def test_an_impossible_objective_fails_with_its_reason(
    primary: SimProvider, backup: SimProvider, receivers: Receivers
) -> None:
    plan = drill_plan(primary, backup, receivers, max_time_to_failover="1ms")
    plan["notify"] = {}  # and no one to tell
    plan["drills"]["objectives"]["max_time_to_notify"] = "30s"
    async with running_gateway(plan) as gw, aiohttp.ClientSession() as http:
        _, drill = await _admin(
            http,
            gw,
            "POST",
            "/standby/drills",
            {"target": TARGET, "fault": "slow", "duration": 2},
        )
        await _drive(gw, 2.0)
        drill = await _done(http, gw, drill["id"])
        verdict = drill["verdict"]
        assert verdict["passed"] is False
        why = {c["objective"]: (c["passed"], c["why"]) for c in verdict["checks"]}
        assert why["max_time_to_failover"][0] is False
        assert "at most 1 ms" in why["max_time_to_failover"][1]
        assert why["max_time_to_notify"] == (False, "no notification was delivered")


async def test_a_wrong_drill_is_a_400_that_says_why(
    primary: SimProvider, backup: SimProvider, receivers: Receivers
) -> None:
    async with running_gateway(drill_plan(primary, backup, receivers)) as gw:
        async with aiohttp.ClientSession() as http:
            for body, words in (
                ({"target": "nowhere/x", "fault": "outage", "duration": 1}, "unknown target"),
                ({"target": TARGET, "fault": "fire", "duration": 1}, "unknown fault"),
                ({"target": TARGET, "fault": "outage", "duration": "9d"}, "at most"),
                ({"target": TARGET, "fault": "outage", "duration": 1, "share": 2}, "share"),
                ({"target": TARGET, "fault": "outage", "duration": "soon"}, "duration"),
            ):
                status, said = await _admin(http, gw, "POST", "/standby/drills", body)
                assert status == 400 and words in str(said), (body, said)
            status, _ = await _admin(http, gw, "GET", "/standby/drills/drill_nope")
            assert status == 404


async def test_standby_drill_from_the_command_line(
    primary: SimProvider, backup: SimProvider, receivers: Receivers, tmp_path: Path
) -> None:
    plan = drill_plan(primary, backup, receivers, max_failed_requests=0)
    async with running_gateway(plan) as gw:
        out = tmp_path / "drill.html"
        cli = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "standby",
            "drill",
            "--url",
            gw.root_url,
            "--target",
            TARGET,
            "--fault",
            "cut",
            "--duration",
            "2s",
            "--rate",
            "5",
            "--format",
            "html",
            "-o",
            str(out),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        said, errors = await asyncio.wait_for(cli.communicate(), 90)
        assert cli.returncode == 0, (said.decode(), errors.decode())
        assert "PASSED" in said.decode() and "pass  max_failed_requests" in said.decode()
        assert "0 failed" in errors.decode()  # every generated request was answered
        assert "<svg" in out.read_text()


async def test_a_drills_notifications_go_to_its_own_channels_only(
    primary: SimProvider, backup: SimProvider, receivers: Receivers
) -> None:
    plan = drill_plan(primary, backup, receivers, max_time_to_notify="20s")
    plan["notify"]["escalation"] = [{"after": "0s", "notify": ["oncall"]}]  # the real on-call
    plan["drills"]["channels"] = ["hooks"]  # where rehearsals are told
    async with running_gateway(plan) as gw, aiohttp.ClientSession() as http:
        _, drill = await _admin(
            http,
            gw,
            "POST",
            "/standby/drills",
            {"target": TARGET, "fault": "outage", "duration": DURATION},
        )
        await _drive(gw, DURATION - 0.5)
        drill = await _done(http, gw, drill["id"])
        assert drill["incidents"] and drill["verdict"]["passed"], drill
        assert receivers.hooks, "the drill channel heard the drill"
        assert all(h["title"].startswith("[DRILL] ") for h in receivers.hooks)
        assert receivers.pagerduty == [], "the real on-call channel heard nothing"
