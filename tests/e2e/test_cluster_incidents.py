"""Three real ``standby serve`` replicas sharing the machine's Redis (and, for the first
test, one PostgreSQL journal): one outage is one incident and one notification, whatever
replica the traffic goes through; and the replica that detects incidents (the lease
holder) sees the others' failures even when the balancer sends it nothing."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web

from standby.journal.migrate import migrate
from standby.journal.sql import SQLStore
from standby.notify.webhook import verify
from standby.sim import Fault, SimProvider
from tests.cluster.redis_support import REDIS, redis_up
from tests.conftest import two_target_plan
from tests.e2e.served import ServedGateway, served
from tests.ops import create_pg_database, drop_pg_database

SECRET = "hook-secret-for-the-cluster"
KEY = "primary/gpt-4o-mini"
T = TypeVar("T")
DETECT = {
    "evaluate_every": "200ms",
    "fast_window": "5s",
    "open_after": 3,
    "resolve_after": 3,
    "min_events": 2,
}


@dataclass
class Hooks:
    """The webhook receiver: what was delivered, signed."""

    url: str = ""
    delivered: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def events(self) -> list[str]:
        return [hook["event"] for hook in self.delivered]


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    found = Hooks()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        stamp, signature = (
            request.headers["X-Standby-Timestamp"],
            request.headers["X-Standby-Signature"],
        )
        if not verify(SECRET, stamp, body, signature, time.time()):
            found.bad_signatures += 1
            return web.Response(status=401)
        found.delivered.append(orjson.loads(body))
        found.changed.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    found.url = f"http://127.0.0.1:{port}/hook"
    yield found
    await runner.cleanup()


@contextlib.asynccontextmanager
async def cluster(plan: dict[str, Any], directory: Path) -> AsyncIterator[list[ServedGateway]]:
    """Three replicas of ``plan``, each with a data directory of its own, connected to
    Redis and one of them leading."""
    async with contextlib.AsyncExitStack() as stack:
        replicas = []
        for n in range(3):
            (directory / f"r{n}").mkdir()
            text = orjson.dumps(plan).decode()  # JSON is YAML
            replicas.append(await stack.enter_async_context(served(text, directory / f"r{n}")))
        async with aiohttp.ClientSession() as http:
            await polled(lambda: _leaders(http, replicas), lambda n: n == 1, within=20.0)
        yield replicas


async def until(condition: Callable[[], bool], within: float = 30.0) -> None:
    """Wait (bounded) until ``condition()``: deliveries and answers are plain lists."""
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.05)


async def polled(
    read: Callable[[], Awaitable[T]], done: Callable[[T], bool], within: float = 30.0
) -> T:
    """Poll ``read()`` (bounded) until ``done`` of what it returned; that."""
    async with asyncio.timeout(within):
        while True:
            found = await read()
            if done(found):
                return found
            await asyncio.sleep(0.1)


async def admin(http: aiohttp.ClientSession, gw: ServedGateway, path: str) -> Any:
    async with http.get(gw.root_url + path) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def _leaders(http: aiohttp.ClientSession, replicas: list[ServedGateway]) -> int:
    found = 0
    for gw in replicas:
        cluster = (await admin(http, gw, "/standby/health")).get("cluster", {})
        if cluster.get("redis") != "connected":
            return -1
        found += bool(cluster["lease"]["held_here"])
    return found


async def leader_of(http: aiohttp.ClientSession, replicas: list[ServedGateway]) -> ServedGateway:
    for gw in replicas:
        if (await admin(http, gw, "/standby/health"))["cluster"]["lease"]["held_here"]:
            return gw
    raise AssertionError("no replica leads")


@contextlib.asynccontextmanager
async def traffic(replicas: list[ServedGateway]) -> AsyncIterator[list[str]]:
    """About ten requests a second, round-robin over ``replicas``; who answered each."""
    answered: list[str] = []
    clients = [
        openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0) for gw in replicas
    ]

    async def send() -> None:
        for client in itertools.cycle(clients):
            reply = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            answered.append(reply.headers["x-standby-provider"])
            await asyncio.sleep(0.1)  # the load's pace, not a wait for anything

    task = asyncio.create_task(send())
    try:
        yield answered
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for client in clients:
            await client.close()


def cluster_plan(primary: SimProvider, backup: SimProvider, **overrides: Any) -> dict[str, Any]:
    return two_target_plan(
        primary,
        backup,
        incidents={"detect": DETECT},
        state={"url": REDIS, "prefix": f"e2e-{secrets.token_hex(4)}", "lease": "3s"},
        **overrides,
    )


async def test_one_outage_is_one_incident_and_one_notification_across_three_replicas(
    primary: SimProvider, backup: SimProvider, hooks: Hooks, tmp_path: Path
) -> None:
    if not await redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    database = await create_pg_database()
    try:
        store = SQLStore.from_url(database)
        try:
            await migrate(store.engine)  # once, as a deployment does before its replicas
        finally:
            await store.close()
        plan = cluster_plan(
            primary,
            backup,
            probes={"interval": "1s", "busy": 2},
            journal={"url": database},
            notify={
                "channels": {"hooks": {"kind": "webhook", "url": hooks.url, "secret": SECRET}},
                "escalation": [{"after": "0s", "notify": ["hooks"]}],
            },
        )
        async with (
            cluster(plan, tmp_path) as replicas,
            aiohttp.ClientSession() as http,
            traffic(replicas) as answered,
        ):
            await until(lambda: len(answered) >= 6)
            assert hooks.delivered == []  # healthy: nobody hears anything
            primary.set_fault(Fault("error", status=503))
            await until(lambda: "opened" in hooks.events())
            listed = [
                (await admin(http, gw, "/standby/incidents?open=true"))["data"] for gw in replicas
            ]
            assert answered[-1] == "backup"  # customers were served all along
            primary.clear()
            await until(lambda: "resolved" in hooks.events())
            after = [(await admin(http, gw, "/standby/incidents"))["data"] for gw in replicas]
        rows = await _incidents(database)
    finally:
        await drop_pg_database(database)

    [incident] = listed[0]
    assert incident["component"] == f"target:{KEY}"
    assert listed == [[incident]] * 3, "every replica shows the one incident"
    assert [[i["id"] for i in found] for found in after] == [[incident["id"]]] * 3
    assert all(found[0]["status"] == "resolved" for found in after)
    assert rows == [(incident["id"], "resolved")], "one incident in the journal"
    assert hooks.events().count("opened") == 1 and hooks.events().count("resolved") == 1
    assert {hook["incident_id"] for hook in hooks.delivered} == {incident["id"]}
    assert hooks.bad_signatures == 0


async def test_the_leader_sees_the_failures_of_replicas_it_receives_no_traffic_for(
    primary: SimProvider, backup: SimProvider, tmp_path: Path
) -> None:
    if not await redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    # no probes (the leader would find the outage itself) and no shared journal: what a
    # replica lists is what its own detector opened
    plan = cluster_plan(primary, backup, journal={"enabled": False})
    async with cluster(plan, tmp_path) as replicas, aiohttp.ClientSession() as http:
        leader = await leader_of(http, replicas)
        others = [gw for gw in replicas if gw is not leader]
        primary.set_fault(Fault("error", status=503))
        async with traffic(others):
            opened = await polled(
                lambda: admin(http, leader, "/standby/incidents?open=true"),
                lambda found: bool(found["data"]),
            )
        health = await admin(http, leader, "/standby/health")
        elsewhere = [(await admin(http, gw, "/standby/incidents"))["data"] for gw in others]
    [incident] = opened["data"]
    assert incident["component"] == f"target:{KEY}"
    assert health["targets"].get(KEY, {}).get("counts", {}) == {}, "no attempt of its own"
    assert health["cluster"]["seconds_merged"] > 0
    assert elsewhere == [[], []], "the others detect nothing themselves"


async def _incidents(url: str) -> list[tuple[str, str]]:
    store = SQLStore.from_url(url)
    try:
        async with store.engine.connect() as conn:
            result = await conn.exec_driver_sql("SELECT id, status FROM incidents")
            return [(str(row["id"]), str(row["status"])) for row in result.mappings()]
    finally:
        await store.close()
