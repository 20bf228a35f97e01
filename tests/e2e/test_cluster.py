"""Two real gateways sharing breaker states through the machine's Redis: the primary
fails on one, its breaker opens, and the other stops sending it requests at once —
through the official SDK, with real sims on loopback."""

from __future__ import annotations

import asyncio
import secrets
import sys
from typing import Any

import aiohttp
import openai
import pytest

from standby.sim import Fault, SimProvider
from standby.testing import running_gateway
from tests.cluster.redis_support import REDIS, private_redis, redis_up
from tests.conftest import two_target_plan
from tests.e2e.served import free_port

KEY = "primary/gpt-4o-mini"
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


async def test_a_breaker_opened_on_one_replica_spares_the_primary_on_the_other(
    primary: SimProvider, backup: SimProvider
) -> None:
    if not await redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    state = {"url": REDIS, "prefix": f"e2e-{secrets.token_hex(4)}"}
    breaker = {"failures": 3, "ejection": "30s", "max_ejection": "30s"}
    plan = two_target_plan(primary, backup, state=state, breaker=breaker)
    async with running_gateway(plan) as a, running_gateway(plan) as b:
        shared_a, shared_b = a.app.shared, b.app.shared
        assert shared_a is not None and shared_b is not None
        async with asyncio.timeout(10):
            while True:  # connecting to Redis: bounded
                if shared_a.connected and shared_b.connected:
                    break
                await asyncio.sleep(0.01)
        primary.set_fault(Fault("error", status=503))
        client_a = openai.AsyncOpenAI(base_url=a.base_url, api_key="x", max_retries=0)
        client_b = openai.AsyncOpenAI(base_url=b.base_url, api_key="x", max_retries=0)
        try:
            for _ in range(3):  # three failures open a's breaker
                reply = await client_a.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=MESSAGES
                )
                assert reply.headers["x-standby-provider"] == "backup"
            registry_a = a.app.registry
            assert registry_a.get(KEY).breaker.state(
                registry_a.get(KEY).breaker.open_until or 0
            ) in (
                "open",
                "half_open",
            )
            async with asyncio.timeout(2):
                while shared_b.applied < 1:
                    shared_b.changed.clear()
                    await shared_b.changed.wait()
            seen = len(primary.requests)
            for _ in range(5):  # b never met the failure, yet spares the primary
                reply = await client_b.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=MESSAGES
                )
                assert reply.headers["x-standby-provider"] == "backup"
            assert len(primary.requests) == seen
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{b.root_url}/standby/health") as resp:
                    cluster = (await resp.json())["cluster"]
            assert cluster["redis"] == "connected" and KEY in cluster["held"]
            # the cluster as any replica sees it: both here, one leading, in agreement
            async with asyncio.timeout(10), aiohttp.ClientSession() as http:
                while True:  # heartbeats come every 2 s: bounded
                    async with http.get(f"{a.root_url}/standby/cluster") as resp:
                        view = await resp.json()
                    if view["agree"] and KEY in view["breakers"]:
                        break
                    await asyncio.sleep(0.2)
            ids = {shared_a.replica, shared_b.replica}
            assert {r["replica"] for r in view["replicas"] if r["alive"]} == ids
            assert view["lease"]["holder"] in ids
            assert view["breakers"][KEY]["opened_by"] == shared_a.replica
            cli = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "standby", "cluster", "status", "--url", b.root_url,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await cli.communicate()
            assert cli.returncode == 0, err.decode()
            assert "holds it" in out.decode() and KEY in out.decode()
        finally:
            await client_a.close()
            await client_b.close()


async def test_redis_stopped_mid_load_and_restarted_fails_no_request(
    primary: SimProvider, backup: SimProvider
) -> None:
    port = free_port()
    state = {"url": f"redis://127.0.0.1:{port}/0", "prefix": "mid-load", "lease": "1s"}
    plan = two_target_plan(primary, backup, state=state)
    server = private_redis(port)
    server.__enter__()
    answered, failed = 0, 0
    try:
        async with running_gateway(plan) as gw:
            client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
            shared = gw.app.shared
            assert shared is not None

            async def load(seconds: float) -> None:
                nonlocal answered, failed
                loop = asyncio.get_running_loop()
                until = loop.time() + seconds
                while loop.time() < until:
                    try:
                        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                        answered += 1
                    except openai.APIError:
                        failed += 1
                    await asyncio.sleep(0.02)  # the load's pace, not a wait for anything

            try:
                await load(1.0)
                server.__exit__(None, None, None)  # Redis stops mid-load
                await load(1.5)
                with private_redis(port):  # and comes back
                    await load(1.5)
                    async with asyncio.timeout(10):
                        while True:  # reconnected: bounded
                            if shared.connected:
                                break
                            await asyncio.sleep(0.05)
                    await load(0.5)
            finally:
                await client.close()
    finally:
        server.__exit__(None, None, None)
    assert answered > 50 and failed == 0
