"""``status_page: {listen: …}``: the public page alone on its own address, where the
gateway's API, its operator endpoints and the journal cannot be reached."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from standby.sim import SimProvider
from tests.e2e.served import free_port, served


async def test_the_page_answers_alone_on_its_own_address(
    primary: SimProvider, tmp_path: Path
) -> None:
    page_port = free_port()
    plan = f"""
providers:
  primary: {{kind: openai-compatible, base_url: "{primary.base_url}", api_key: "sk-sim"}}
routes:
  gpt-4o-mini: {{targets: ["primary/gpt-4o-mini"]}}
probes: {{enabled: false}}
status_page:
  title: Acme AI status
  listen: "127.0.0.1:{page_port}"
  components: {{"Chat assistant": {{routes: ["gpt-*"]}}}}
"""
    async with served(plan, tmp_path) as gw, aiohttp.ClientSession() as session:
        page = f"http://127.0.0.1:{page_port}"

        async def status_of(url: str, method: str = "GET") -> tuple[int, str]:
            async with session.request(method, url, allow_redirects=False) as resp:
                return resp.status, await resp.text()

        code, html = await status_of(f"{page}/status")
        assert code == 200 and "Acme AI status" in html and "Chat assistant" in html
        code, summary = await status_of(f"{page}/status/api/v2/summary.json")
        assert code == 200 and '"Chat assistant"' in summary
        assert (await status_of(f"{page}/"))[0] == 308  # the root leads to the page
        # nothing but the page: not the API, the operator endpoints, the journal
        for path in ("/v1/models", "/standby/health", "/metrics", "/standby/incidents"):
            assert (await status_of(f"{page}{path}"))[0] == 404, path
        code, _ = await status_of(f"{page}/v1/chat/completions", "POST")
        assert code in (404, 405)
        # and the gateway still mounts it at /status
        assert (await status_of(f"{gw.root_url}/status"))[0] == 200
        assert any("Status page also on" in line for line in gw.stderr)


async def _page_says(session: aiohttp.ClientSession, url: str, words: str) -> str:
    """The page once it says ``words`` (the page's process reads the journal's database
    every second: bounded polling of a real process, not timing)."""
    async with asyncio.timeout(PAGE_WAIT):
        while True:
            try:
                async with session.get(url) as resp:
                    text = await resp.text()
                    if resp.status == 200 and words in text:
                        return text
            except aiohttp.ClientConnectionError:  # a page started by hand: not yet up
                pass
            await asyncio.sleep(0.1)


PAGE_WAIT = 15.0


async def test_the_pages_own_process_follows_the_gateway_and_ends_with_it(
    primary: SimProvider, tmp_path: Path
) -> None:
    page_port = free_port()
    plan = f"""
providers:
  primary: {{kind: openai-compatible, base_url: "{primary.base_url}", api_key: "sk-sim"}}
routes:
  gpt-4o-mini: {{targets: ["primary/gpt-4o-mini"]}}
probes: {{enabled: false}}
status_page:
  title: Acme AI status
  listen: "127.0.0.1:{page_port}"
  components: {{"Chat assistant": {{routes: ["gpt-*"]}}}}
"""
    page = f"http://127.0.0.1:{page_port}"
    async with served(plan, tmp_path) as gw, aiohttp.ClientSession() as session:
        # an incident declared on the gateway reaches the page the other process serves
        declared = {
            "component": "route:gpt-4o-mini",
            "title": "Chat answers fail",
            "severity": "major",
            "message": "We are investigating failed chat answers.",
        }
        async with session.post(f"{gw.root_url}/standby/incidents", json=declared) as resp:
            assert resp.status == 201, await resp.text()
            incident = await resp.json()
        # the component's state is the truth at once; the incident shows once published
        await _page_says(session, f"{page}/status/api/v2/summary.json", '"major_outage"')
        async with session.post(f"{gw.root_url}/standby/incidents/{incident['id']}/publish") as r:
            assert r.status == 200, await r.text()
        await _page_says(session, f"{page}/status", "We are investigating failed chat answers.")
        # the subscription form is served there (its deliveries run there too)
        async with session.get(f"{page}/status/subscribe") as resp:
            assert resp.status == 200
        # resolved on the gateway: the page is operational again
        async with session.post(
            f"{gw.root_url}/standby/incidents/{incident['id']}/resolve",
            json={"message": "Fixed."},
        ) as resp:
            assert resp.status == 200, await resp.text()
        await _page_says(session, f"{page}/status/api/v2/status.json", '"none"')
        # a reloaded plan reaches the page's process
        gw.plan_path.write_text(plan.replace("Acme AI status", "Acme status, reloaded"))
        gw.process.send_signal(signal.SIGHUP)
        await _page_says(session, f"{page}/status", "Acme status, reloaded")
        # a gateway killed outright takes its page with it: no orphan keeps the port
        gw.process.kill()
        await gw.process.wait()
        async with asyncio.timeout(PAGE_WAIT):
            while True:
                try:
                    async with session.get(f"{page}/status") as resp:
                        await resp.read()
                except aiohttp.ClientConnectionError:
                    break
                await asyncio.sleep(0.1)


async def test_standby_status_page_serves_a_gateways_journal_by_hand(
    primary: SimProvider, tmp_path: Path
) -> None:
    plan = f"""
providers:
  primary: {{kind: openai-compatible, base_url: "{primary.base_url}", api_key: "sk-sim"}}
routes:
  gpt-4o-mini: {{targets: ["primary/gpt-4o-mini"]}}
probes: {{enabled: false}}
status_page:
  title: Acme AI status
  components: {{"Chat assistant": {{routes: ["gpt-*"]}}}}
"""
    async with served(plan, tmp_path) as gw, aiohttp.ClientSession() as session:
        declared = {
            "component": "route:gpt-4o-mini",
            "title": "Chat answers fail",
            "severity": "minor",
            "message": "Some chat answers are slow.",
        }
        async with session.post(f"{gw.root_url}/standby/incidents", json=declared) as resp:
            assert resp.status == 201, await resp.text()
        page_port = free_port()
        page = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "standby",
            "status-page",
            "--plan",
            str(gw.plan_path),
            "--listen",
            f"127.0.0.1:{page_port}",
            stderr=subprocess.PIPE,
        )
        try:
            html = await _page_says(
                session, f"http://127.0.0.1:{page_port}/status", "Some chat answers are slow."
            )
            assert "Acme AI status" in html
            # the same address again: one line saying why, exit status 1
            busy = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "standby",
                "status-page",
                "--plan",
                str(gw.plan_path),
                "--listen",
                f"127.0.0.1:{page_port}",
                stderr=subprocess.PIPE,
            )
            _, said = await busy.communicate()
            assert busy.returncode == 1
            assert f"port {page_port} on 127.0.0.1 is already in use" in said.decode()
        finally:
            page.terminate()
            await page.wait()
