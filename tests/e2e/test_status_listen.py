"""``status_page: {listen: …}``: the public page alone on its own address, where the
gateway's API, its operator endpoints and the journal cannot be reached."""

from __future__ import annotations

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
