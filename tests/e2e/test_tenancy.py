"""Tenancy and the locked admin surface, end to end on a real ``standby serve`` process.

Two clients (``alice`` and ``bob``, each with its own key), an admin token and a metrics
token, the official ``openai`` SDK as the client, a real sim provider, the real journal
(SQLite beside the plan).  Every access by one client to what the other stored must be a
404, exactly as if it did not exist; the admin token sees all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from standby.sim import Fault, SimProvider
from standby.web.clients import hash_key
from tests.e2e.served import ServedGateway, served

ALICE, BOB = "sk-alice-0123456789", "sk-bob-9876543210"
ADMIN, SCRAPER = "admin-token-abcdef", "metrics-token-123456"
MODEL, DEFERRABLE = "gpt-4o-mini", "batch-mini"
HELLO: list[Any] = [{"role": "user", "content": "hello"}]
DEFER_WAIT = 30.0  # the deferred runner retries after 1 s, 2 s, … and the breaker half-opens


def tenancy_plan(sim: SimProvider, *, store: str = "on_request") -> str:
    return f"""
providers:
  sim: {{kind: openai-compatible, base_url: "{sim.base_url}", api_key: sk-upstream}}
timeouts: {{connect: 1s, first_token: 2s, idle: 2s, total: 10s}}
breaker: {{ejection: 100ms, max_ejection: 300ms}}
server:
  client_keys:
    alice: "{hash_key(ALICE)}"
    bob: "{hash_key(BOB)}"
  admin_token: {ADMIN}
  metrics_token: {SCRAPER}
journal: {{store: {store}}}
routes:
  {MODEL}: {{targets: [sim/{MODEL}]}}
  {DEFERRABLE}: {{targets: [sim/{MODEL}], defer: {{allowed: true, max_age: 1h}}}}
"""


@pytest.fixture
async def gateway(primary: SimProvider, tmp_path: Path) -> AsyncIterator[ServedGateway]:
    async with served(tenancy_plan(primary), tmp_path) as gw:
        yield gw


def sdk(gw: ServedGateway, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


async def test_stored_completions_are_visible_only_to_their_client(
    gateway: ServedGateway,
) -> None:
    alice, bob, admin = sdk(gateway, ALICE), sdk(gateway, BOB), sdk(gateway, ADMIN)
    kept = await alice.chat.completions.create(
        model=MODEL, messages=HELLO, store=True, metadata={"team": "a"}
    )
    unasked = await alice.chat.completions.create(model=MODEL, messages=HELLO)
    bobs = await bob.chat.completions.create(model=MODEL, messages=HELLO, store=True)

    for call in (
        bob.chat.completions.retrieve(kept.id),
        bob.chat.completions.update(kept.id, metadata={"taken": "yes"}),
        bob.chat.completions.delete(kept.id),
        bob.chat.completions.messages.list(kept.id),
        alice.chat.completions.retrieve(unasked.id),  # not asked to be stored: OpenAI's default
        alice.chat.completions.retrieve(bobs.id),
    ):
        with pytest.raises(openai.NotFoundError):
            await call
    assert [c.id async for c in bob.chat.completions.list()] == [bobs.id]
    assert [c.id async for c in alice.chat.completions.list()] == [kept.id]
    # a cursor naming another client's completion reads as unknown, not as a position
    assert (await bob.chat.completions.list(after=kept.id)).data == []
    assert (await alice.chat.completions.retrieve(kept.id)).metadata == {"team": "a"}
    assert [m.content for m in (await alice.chat.completions.messages.list(kept.id)).data] == [
        "hello"
    ]

    # the admin token sees every client's stored completions
    assert {c.id async for c in admin.chat.completions.list()} == {kept.id, bobs.id}
    assert (await admin.chat.completions.retrieve(kept.id)).id == kept.id

    # the operator's journal records every request, stored or not, with its client
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{gateway.root_url}/standby/journal",
            headers={"authorization": f"Bearer {ADMIN}"},
        ) as reply,
    ):
        assert reply.status == 200
        rows = (await reply.json())["data"]
    assert sorted((row["client"], row["completion_id"]) for row in rows) == sorted(
        [("alice", kept.id), ("alice", unasked.id), ("bob", bobs.id)]
    )
    # the answer's x-request-id is the journal's id of the request
    raw = await alice.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO)
    assert raw.headers["x-request-id"].startswith("req_")
    # the metrics count each named client's requests
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{gateway.root_url}/metrics", headers={"authorization": f"Bearer {SCRAPER}"}
        ) as reply,
    ):
        metrics = await reply.text()
    for client, status in (("alice", 200), ("bob", 200), ("bob", 404)):
        assert f'standby_client_requests_total{{client="{client}",status="{status}"}}' in metrics
    # alice's deletions still work on her own
    assert (await alice.chat.completions.delete(kept.id)).deleted
    for client in (alice, bob, admin):
        await client.close()


async def test_previous_response_id_and_retrieval_are_per_client(
    gateway: ServedGateway,
) -> None:
    alice, bob, admin = sdk(gateway, ALICE), sdk(gateway, BOB), sdk(gateway, ADMIN)
    first = await alice.responses.create(model=MODEL, input="remember the word 'heron'")
    with pytest.raises(openai.NotFoundError) as caught:
        await bob.responses.create(model=MODEL, input="and then?", previous_response_id=first.id)
    assert caught.value.code == "previous_response_not_found"
    with pytest.raises(openai.NotFoundError):
        await bob.responses.retrieve(first.id)

    second = await alice.responses.create(
        model=MODEL, input="and then?", previous_response_id=first.id
    )
    assert second.output_text
    assert (await alice.responses.retrieve(first.id)).id == first.id
    assert (await admin.responses.retrieve(second.id)).id == second.id
    unstored = await alice.responses.create(model=MODEL, input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        await alice.responses.retrieve(unstored.id)
    for client in (alice, bob, admin):
        await client.close()


async def test_deferred_results_are_visible_only_to_their_client(
    gateway: ServedGateway, primary: SimProvider
) -> None:
    alice, bob = sdk(gateway, ALICE), sdk(gateway, BOB)
    primary.set_fault(Fault("error", status=503))
    raw = await alice.chat.completions.with_raw_response.create(
        model=DEFERRABLE, messages=HELLO, extra_headers={"Standby-Defer": "allow"}
    )
    assert raw.status_code == 202, raw.text
    completion_id = orjson.loads(raw.content)["id"]
    primary.clear()

    async with asyncio.timeout(DEFER_WAIT):
        while True:  # the runner completes it once the provider answers again
            try:
                done = await alice.chat.completions.retrieve(completion_id)
                break
            except openai.NotFoundError:
                await asyncio.sleep(0.2)
    assert done.choices[0].message.content == primary.expected_text()
    with pytest.raises(openai.NotFoundError):
        await bob.chat.completions.retrieve(completion_id)
    assert completion_id not in [c.id async for c in bob.chat.completions.list()]
    await alice.close()
    await bob.close()


OPERATOR_PATHS = ("/standby/journal", "/standby/health", "/metrics")


@pytest.mark.parametrize(
    ("token", "allowed"),
    [
        (None, set()),
        ("wrong-token", set()),
        (ALICE, set()),  # a client key is not an operator's token
        (SCRAPER, {"/metrics"}),
        (ADMIN, set(OPERATOR_PATHS)),
    ],
)
async def test_operator_endpoints_need_the_admin_token(
    gateway: ServedGateway, token: str | None, allowed: set[str]
) -> None:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(headers=headers) as http:
        for path in OPERATOR_PATHS:
            async with http.get(gateway.root_url + path) as reply:
                assert reply.status == (200 if path in allowed else 401), path
                if reply.status == 401:
                    body = await reply.json()
                    assert body["error"]["type"] == "invalid_request_error"
        async with http.get(gateway.root_url + "/healthz") as reply:
            assert reply.status == 200
            assert await reply.json() == {"status": "ok"}  # says nothing else, to anyone


@pytest.mark.parametrize("policy", ["always", "never"])
async def test_the_plan_decides_what_is_stored(
    primary: SimProvider, tmp_path: Path, policy: str
) -> None:
    async with served(tenancy_plan(primary, store=policy), tmp_path) as gw:
        alice = sdk(gw, ALICE)
        asked = await alice.chat.completions.create(model=MODEL, messages=HELLO, store=True)
        unasked = await alice.chat.completions.create(model=MODEL, messages=HELLO)
        if policy == "always":
            assert {c.id async for c in alice.chat.completions.list()} == {asked.id, unasked.id}
        else:
            with pytest.raises(openai.NotFoundError) as caught:
                await alice.chat.completions.retrieve(asked.id)
            assert caught.value.code == "stored_completions_disabled"
        await alice.close()
