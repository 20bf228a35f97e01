"""A scripted outage against sim providers, and its post-outage report: the figures of
the report equal what the test sent and saw, through the official SDK and the admin API.

The script: an incident opened on the route; the primary cuts streams mid-answer (each
one finished by the backup); then it answers 503 (every request fails over); then both
are down (one request deferred, one refused); then both recover (the deferred one
is completed); the incident is resolved.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson

from standby.sim import Fault, SimProvider
from standby.testing import RunningGateway, running_gateway
from tests.e2e.test_deferred import (
    MODEL,
    Receiver,
    both_down,
    defer,
    deferring_plan,
    receiver,
    sdk,
)
from tests.statuspage.browser_support import chromium

__all__ = ["receiver"]  # the callback receiver fixture, shared with the deferred tests

PRICES = {
    f"primary/{MODEL}": {"input": 0.15, "output": 0.60},
    f"backup/{MODEL}": {"input": 3.00, "output": 15.00},
}
HAVE_CHROMIUM = Path("/usr/bin/chromium").exists()
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "reports"
FAILED_OVER = 6  # non-streamed requests while the primary answers 503
CUT = 3  # streams the primary cuts mid-answer
MESSAGES: list[Any] = [{"role": "user", "content": "tell me a story"}]


async def _admin(
    http: aiohttp.ClientSession, gw: RunningGateway, method: str, path: str, body: Any = None
) -> Any:
    async with http.request(method, f"{gw.root_url}{path}", json=body) as resp:
        assert resp.status in (200, 201), await resp.text()
        return await resp.json(content_type=None)


async def _report(
    http: aiohttp.ClientSession, gw: RunningGateway, incident: str, fmt: str
) -> tuple[str, str]:
    url = f"{gw.root_url}/standby/incidents/{incident}/report?format={fmt}"
    async with http.get(url) as resp:
        assert resp.status == 200, await resp.text()
        return resp.headers["content-type"], await resp.text()


async def test_the_report_counts_what_the_outage_did(
    primary: SimProvider, backup: SimProvider, receiver: Receiver, tmp_path: Path
) -> None:
    plan = deferring_plan(primary, backup, tmp_path)
    plan["prices"] = PRICES
    async with running_gateway(plan) as gw, aiohttp.ClientSession() as http:
        client = await sdk(gw)
        incident = await _admin(
            http,
            gw,
            "POST",
            "/standby/incidents",
            {"component": f"route:{MODEL}", "title": "Chat answers fail", "severity": "major"},
        )
        # streams first: each is cut mid-answer by the primary and finished by the backup
        # (three consecutive failures: the breaker, at five, stays closed)
        primary.set_fault(Fault("cut_stream", after=3))
        for _ in range(CUT):
            stream = await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text  # whole: the backup finished it
        primary.set_fault(Fault("error", status=503))
        for _ in range(FAILED_OVER):
            answer = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
            assert answer.choices[0].message.content == backup.expected_text()
        both_down(primary, backup)
        deferred_id = await defer(client, receiver.url)
        try:
            await client.chat.completions.create(model=MODEL, messages=MESSAGES)
            raise AssertionError("both down: the caller gets the 503")
        except openai.APIStatusError as error:
            assert error.status_code == 503
        primary.clear()
        backup.clear()
        _, body = await receiver.wait()  # the deferred request, completed
        assert orjson.loads(body)["id"] == deferred_id
        await _admin(http, gw, "POST", f"/standby/incidents/{incident['id']}/resolve", {})

        found = await _admin(http, gw, "GET", f"/standby/incidents/{incident['id']}")
        assert found["report_url"] == f"/standby/incidents/{incident['id']}/report"
        media, text = await _report(http, gw, incident["id"], "json")
        assert media.startswith("application/json")
        report = orjson.loads(text)
        impact = report["impact"]
        sent = FAILED_OVER + CUT + 2
        assert impact["requests"] == sent
        # the deferred one is answered on recovery: by the primary, or by the backup when
        # the primary's breaker has not closed yet (either is right; the count is exact)
        assert impact["answered_by_primary"] + impact["answered_by_fallback"] == sent - 1
        assert impact["answered_by_fallback"] >= FAILED_OVER + CUT
        assert (impact["failed"], impact["failed_by_class"]) == (1, {"unavailable": 1})
        assert (impact["deferred"], impact["deferred_completed"]) == (1, 1)
        assert (impact["streams"], impact["streams_continued"]) == (CUT, CUT)
        by_fallback = impact["answered_by_fallback"]
        assert impact["fallback_share"] == by_fallback / (by_fallback + 1)
        roles = {t["target"]: t["role"] for t in impact["targets"]}
        assert roles[f"backup/{MODEL}"] == "fallback"
        assert roles.get(f"primary/{MODEL}", "primary") == "primary"
        assert impact["cost"] is not None and impact["cost_delta"] > 0  # the backup costs more
        timings = report["timings"]
        assert 0 <= timings["to_failover"] < 10  # the first request after opening failed over
        assert timings["duration"] is not None and timings["duration"] > 0
        assert report["root_cause"]["published"] is False
        kinds = [e["kind"] for e in report["timeline"]]
        assert kinds[0] == "opened" and "resolved" in kinds and "traffic" in kinds
        assert sum(b["requests"] for b in report["series"]) >= sent

        media, markdown = await _report(http, gw, incident["id"], "markdown")
        assert media.startswith("text/markdown")
        for heading in ("Summary", "Impact", "Timeline", "Root cause", "Action items"):
            assert heading in markdown
        media, html = await _report(http, gw, incident["id"], "html")
        assert media.startswith("text/html") and "<svg" in html
        page_file = tmp_path / "report.html"
        page_file.write_text(html)
        if HAVE_CHROMIUM:  # the real report, as a person opens it
            async with chromium() as browsing:
                visit = await browsing.visit()
                await visit.page.goto(page_file.as_uri())
                for heading in ("Summary", "Impact", "Timeline", "Root cause"):
                    assert await visit.page.get_by_role("heading", name=heading).is_visible()
                assert await visit.page.locator("svg[role=img]").count() == 3
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                shot = ARTIFACTS / "e2e-scripted-outage.png"
                await visit.page.screenshot(path=str(shot), full_page=True)
                browsing.assert_clean()

        # an unknown incident is a 404, a wrong format a 400
        async with http.get(f"{gw.root_url}/standby/incidents/inc_nope/report") as resp:
            assert resp.status == 404
        url = f"{gw.root_url}/standby/incidents/{incident['id']}/report?format=pdf"
        async with http.get(url) as resp:
            assert resp.status == 400
        await client.close()

    # the same report from the command line, reading the journal the gateway left
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_bytes(orjson.dumps(plan))  # YAML reads JSON
    out = tmp_path / "report.md"
    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "standby",
        "report",
        incident["id"],
        "--plan",
        str(plan_file),
        "-o",
        str(out),
        stderr=asyncio.subprocess.PIPE,
    )
    _, said = await cli.communicate()
    assert cli.returncode == 0, said.decode()
    written = out.read_text()
    assert "Chat answers fail" in written and f"| {by_fallback:,} |" in written
    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "standby",
        "report",
        "inc_nope",
        "--plan",
        str(plan_file),
        stderr=asyncio.subprocess.PIPE,
    )
    _, said = await cli.communicate()
    assert cli.returncode == 1 and "no incident 'inc_nope' in the journal" in said.decode()
