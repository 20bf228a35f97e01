"""Deferred completion (F20) end to end: the official SDK against a real gateway, real
simulated providers, the real journal (write-ahead log + SQLite in a temporary directory)
and a real HTTP receiver for the signed callback.

Every wait is bounded and event-driven: the receiver sets an ``asyncio.Event`` when a
callback arrives, and the test waits for it under ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web

from standby.deferred.callbacks import COMPLETED_EVENT, FAILED_EVENT, verify_signature
from standby.sim import Fault, SimProvider
from standby.testing import RunningGateway, running_gateway
from tests.conftest import two_target_plan

SECRET = "whsec_e2e_deferred"
MODEL = "gpt-4o-mini"
MESSAGES: list[Any] = [{"role": "user", "content": "answer when you can"}]
CALLBACK_WAIT = 30.0  # the runner retries after 1 s, 2 s, 4 s… and breakers half-open


@dataclass
class Receiver:
    """Records every callback POSTed to it; ``arrived`` is set by the first one."""

    url: str = ""
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read()))
        self.arrived.set()
        return web.Response(status=204)

    async def wait(self) -> tuple[dict[str, str], bytes]:
        async with asyncio.timeout(CALLBACK_WAIT):
            await self.arrived.wait()
        return self.got[0]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/standby", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}/hooks/standby"
    yield rec
    await runner.cleanup()


def deferring_plan(primary: SimProvider, backup: SimProvider, tmp_path: Path) -> dict[str, Any]:
    """Two sims for ``gpt-4o-mini``, deferral allowed, the journal in ``tmp_path``."""
    plan = two_target_plan(primary, backup)
    plan["routes"][MODEL]["defer"] = {"allowed": True, "max_age": "1h"}
    plan["breaker"] = {"ejection": "100ms", "max_ejection": "500ms"}
    plan["journal"] = {
        "url": f"sqlite:///{tmp_path / 'journal.db'}",
        "wal_dir": str(tmp_path / "wal"),
        "callback_secret": SECRET,
        "callback_hosts": ["127.0.0.1"],  # the receiver listens on loopback
    }
    return plan


def both_down(primary: SimProvider, backup: SimProvider) -> None:
    primary.set_fault(Fault("error", status=503))
    backup.set_fault(Fault("error", status=503))


async def sdk(gw: RunningGateway) -> openai.AsyncOpenAI:
    """An SDK client, once the gateway's journal database is migrated and followed."""
    service = gw.app.journal_service
    assert service is not None
    async with asyncio.timeout(10):
        await service.ready()
    return openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


async def defer(client: openai.AsyncOpenAI, callback: str) -> str:
    """Ask with deferral allowed while everything is down; the 202's completion id."""
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=MESSAGES,
        extra_headers={"Standby-Defer": "allow", "Standby-Callback-URL": callback},
    )
    assert raw.status_code == 202, raw.text
    body = orjson.loads(raw.content)
    completion_id = body["id"]
    assert completion_id.startswith("chatcmpl-")
    assert (body["object"], body["status"], body["model"]) == (
        "chat.completion.deferred",
        "deferred",
        MODEL,
    )
    assert raw.headers["location"] == f"/v1/chat/completions/{completion_id}"
    assert int(raw.headers["retry-after"]) >= 1
    return str(completion_id)


async def check_completed(
    client: openai.AsyncOpenAI, receiver: Receiver, completion_id: str, primary: SimProvider
) -> None:
    """The callback arrives signed, and the stored completion holds the same answer."""
    headers, body = await receiver.wait()
    assert headers["Standby-Event"] == COMPLETED_EVENT
    assert verify_signature(SECRET, headers["Standby-Signature"], body, now=time.time())
    assert not verify_signature("whsec_wrong", headers["Standby-Signature"], body, now=time.time())
    posted = orjson.loads(body)
    assert (posted["id"], posted["object"]) == (completion_id, "chat.completion")
    assert posted["choices"][0]["message"]["content"] == primary.expected_text()
    stored = await client.chat.completions.retrieve(completion_id)
    assert stored.id == completion_id
    assert stored.choices[0].message.content == primary.expected_text()
    assert len(receiver.got) == 1


async def test_a_deferred_request_is_completed_on_recovery_and_called_back(
    primary: SimProvider, backup: SimProvider, receiver: Receiver, tmp_path: Path
) -> None:
    both_down(primary, backup)
    async with running_gateway(deferring_plan(primary, backup, tmp_path)) as gw:
        client = await sdk(gw)
        completion_id = await defer(client, receiver.url)
        with pytest.raises(openai.NotFoundError):  # not answered yet
            await client.chat.completions.retrieve(completion_id)
        primary.clear()
        backup.clear()
        await check_completed(client, receiver, completion_id, primary)
        await client.close()


async def test_metadata_opts_in_without_headers(
    primary: SimProvider, backup: SimProvider, receiver: Receiver, tmp_path: Path
) -> None:
    both_down(primary, backup)
    async with running_gateway(deferring_plan(primary, backup, tmp_path)) as gw:
        client = await sdk(gw)
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=MESSAGES,
            store=True,
            metadata={"standby_defer": "true", "standby_callback": receiver.url},
        )
        assert raw.status_code == 202
        completion_id = orjson.loads(raw.content)["id"]
        primary.clear()
        backup.clear()
        await check_completed(client, receiver, completion_id, primary)
        await client.close()


async def test_without_opting_in_or_when_streaming_the_caller_gets_the_503(
    primary: SimProvider, backup: SimProvider, receiver: Receiver, tmp_path: Path
) -> None:
    both_down(primary, backup)
    async with running_gateway(deferring_plan(primary, backup, tmp_path)) as gw:
        client = await sdk(gw)
        with pytest.raises(openai.APIStatusError) as plain:
            await client.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert plain.value.status_code == 503
        assert plain.value.response.headers.get("retry-after")
        with pytest.raises(openai.APIStatusError) as streamed:
            stream = await client.chat.completions.create(
                model=MODEL,
                messages=MESSAGES,
                stream=True,
                extra_headers={"Standby-Defer": "allow", "Standby-Callback-URL": receiver.url},
            )
            async for _ in stream:
                pass
        assert streamed.value.status_code == 503
        await client.close()
    assert receiver.got == []


async def test_a_route_that_does_not_allow_it_gives_the_503(
    primary: SimProvider, backup: SimProvider, tmp_path: Path
) -> None:
    both_down(primary, backup)
    plan = deferring_plan(primary, backup, tmp_path)
    del plan["routes"][MODEL]["defer"]
    async with running_gateway(plan) as gw:
        client = await sdk(gw)
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, extra_headers={"Standby-Defer": "allow"}
            )
        assert caught.value.status_code == 503
        await client.close()


async def test_deferred_work_survives_a_restart(
    primary: SimProvider, backup: SimProvider, receiver: Receiver, tmp_path: Path
) -> None:
    both_down(primary, backup)
    plan = deferring_plan(primary, backup, tmp_path)
    async with running_gateway(plan) as gw:
        client = await sdk(gw)
        completion_id = await defer(client, receiver.url)
        await client.close()
    assert receiver.got == []  # the first gateway never answered it
    primary.clear()
    backup.clear()
    async with running_gateway(plan) as gw:  # same journal: database and log
        client = await sdk(gw)
        await check_completed(client, receiver, completion_id, primary)
        await client.close()


async def test_a_request_nothing_answers_in_time_expires_with_a_failed_callback(
    primary: SimProvider, backup: SimProvider, receiver: Receiver, tmp_path: Path
) -> None:
    both_down(primary, backup)
    plan = deferring_plan(primary, backup, tmp_path)
    plan["routes"][MODEL]["defer"]["max_age"] = "1s"
    async with running_gateway(plan) as gw:
        client = await sdk(gw)
        completion_id = await defer(client, receiver.url)
        headers, body = await receiver.wait()
        assert headers["Standby-Event"] == FAILED_EVENT
        assert verify_signature(SECRET, headers["Standby-Signature"], body, now=time.time())
        notice = orjson.loads(body)
        assert (notice["id"], notice["status"]) == (completion_id, "failed")
        assert notice["error"]["code"] == "deferred_expired"
        with pytest.raises(openai.NotFoundError):  # failed: there is nothing to retrieve
            await client.chat.completions.retrieve(completion_id)
        await client.close()
