"""Two real ``standby serve`` replicas sharing Redis: one leads the singleton jobs; kill
it with SIGKILL and the other takes them over within the lease time."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from standby.sim import SimProvider
from tests.cluster.redis_support import REDIS, redis_up
from tests.e2e.served import ServedGateway, served

LEASE = 2.0


async def _lease(http: aiohttp.ClientSession, gw: ServedGateway) -> dict[str, Any]:
    async with http.get(f"{gw.root_url}/standby/health") as resp:
        return dict((await resp.json())["cluster"]["lease"])


async def test_killing_the_leader_hands_the_jobs_to_another_within_the_lease(
    primary: SimProvider, backup: SimProvider, tmp_path: Path
) -> None:
    if not await redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    plan = f"""
providers:
  primary: {{kind: openai-compatible, base_url: "{primary.base_url}", api_key: "sk-sim"}}
  backup: {{kind: openai-compatible, base_url: "{backup.base_url}", api_key: "sk-sim"}}
routes:
  gpt-4o-mini: {{targets: ["primary/gpt-4o-mini", "backup/gpt-4o-mini"]}}
probes: {{enabled: false}}
state: {{url: "{REDIS}", prefix: "e2e-{secrets.token_hex(4)}", lease: {LEASE}s}}
"""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        served(plan, tmp_path / "a") as a,
        served(plan, tmp_path / "b") as b,
        aiohttp.ClientSession() as http,
    ):
        async with asyncio.timeout(10):
            while True:  # both connected, one of them leading: bounded
                leases = [await _lease(http, gw) for gw in (a, b)]
                if [lease["held_here"] for lease in leases].count(True) == 1:
                    break
                await asyncio.sleep(0.1)
        leader, other = (a, b) if leases[0]["held_here"] else (b, a)
        assert (await _lease(http, other))["holder"] == (await _lease(http, leader))["holder"]
        leader.process.kill()  # SIGKILL: it cannot give the lease up
        await leader.process.wait()
        started = time.perf_counter()
        async with asyncio.timeout(LEASE * 3):
            while True:  # the lease expires on Redis's clock: bounded
                if (await _lease(http, other))["held_here"]:
                    break
                await asyncio.sleep(0.1)
        took = time.perf_counter() - started
        assert took <= LEASE + LEASE / 3 + 0.5, took
