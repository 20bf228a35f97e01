"""Callback hosts and signing through a real gateway: the official SDK, simulated
providers that are down, the real journal in a temporary data directory, and a real
receiver on 127.0.0.1.

Every wait is bounded and event-driven: the receiver sets an event when a callback
arrives, and the test waits for it under ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web

from standby.deferred.callbacks import COMPLETED_EVENT, verify_signature
from standby.journal.service import CALLBACK_SECRET_FILE
from standby.sim import Fault, SimProvider
from standby.testing import RunningGateway, running_gateway
from tests.conftest import two_target_plan

MODEL = "gpt-4o-mini"
MESSAGES: list[Any] = [{"role": "user", "content": "answer when you can"}]
CALLBACK_WAIT = 30.0  # the runner retries after 1 s, 2 s, 4 s… and breakers half-open
METADATA_URL = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


class Receiver:
    """Records every callback POSTed to ``/hooks``; ``arrived`` is set by the first."""

    def __init__(self) -> None:
        self.url = ""
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read()))
        self.arrived.set()
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}/hooks"
    yield rec
    await runner.cleanup()


def plan_with(primary: SimProvider, backup: SimProvider, hosts: list[str]) -> dict[str, Any]:
    """Deferral allowed, both targets down, no callback secret in the plan."""
    primary.set_fault(Fault("error", status=503))
    backup.set_fault(Fault("error", status=503))
    plan = two_target_plan(primary, backup)
    plan["routes"][MODEL]["defer"] = {"allowed": True, "max_age": "1h"}
    plan["breaker"] = {"ejection": "100ms", "max_ejection": "500ms"}
    plan["journal"] = {"callback_hosts": hosts}
    return plan


async def sdk(gw: RunningGateway) -> openai.AsyncOpenAI:
    service = gw.app.journal_service
    assert service is not None
    async with asyncio.timeout(10):
        await service.ready()
    return openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


async def ask(client: openai.AsyncOpenAI, callback: str, *, via: str = "header") -> Any:
    """Ask with deferral allowed, naming ``callback`` in a header or in the metadata."""
    headers = {"Standby-Defer": "allow"}
    if via == "header":
        headers["Standby-Callback-URL"] = callback
        metadata = None
    else:
        metadata = {"standby_callback": callback}
    return await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, extra_headers=headers, metadata=metadata
    )


@pytest.mark.parametrize(
    ("hosts", "callback", "via", "param"),
    [
        ([], "http://127.0.0.1:9/hooks", "header", "Standby-Callback-URL"),
        ([], "http://[::ffff:127.0.0.1]:9/hooks", "header", "Standby-Callback-URL"),
        ([], METADATA_URL, "metadata", "metadata.standby_callback"),
        (["hooks.example.com"], "http://127.0.0.1:9/", "metadata", "metadata.standby_callback"),
    ],
    ids=["loopback", "ipv4-mapped-loopback", "cloud-metadata", "not-listed"],
)
async def test_a_callback_the_plan_does_not_allow_is_a_400(
    primary: SimProvider,
    backup: SimProvider,
    tmp_path: Path,
    hosts: list[str],
    callback: str,
    via: str,
    param: str,
) -> None:
    async with running_gateway(plan_with(primary, backup, hosts), data_dir=tmp_path) as gw:
        client = await sdk(gw)
        with pytest.raises(openai.BadRequestError) as caught:
            await ask(client, callback, via=via)
        await client.close()
    error = orjson.loads(caught.value.response.content)["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "callback_not_allowed",
        param,
    )
    assert error["message"].startswith("The callback URL is not allowed: ")


async def test_a_listed_loopback_callback_is_delivered_signed_with_the_generated_secret(
    primary: SimProvider, backup: SimProvider, receiver: Receiver, tmp_path: Path
) -> None:
    plan = plan_with(primary, backup, ["127.0.0.1"])
    async with running_gateway(plan, data_dir=tmp_path) as gw:
        client = await sdk(gw)
        raw = await ask(client, receiver.url)
        assert raw.status_code == 202, raw.text
        completion_id = orjson.loads(raw.content)["id"]
        primary.clear()
        backup.clear()
        async with asyncio.timeout(CALLBACK_WAIT):
            await receiver.arrived.wait()
        await client.close()
    secret_file = tmp_path / CALLBACK_SECRET_FILE
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    headers, body = receiver.got[0]
    assert headers["Standby-Event"] == COMPLETED_EVENT
    assert verify_signature(secret, headers["Standby-Signature"], body, now=time.time())
    assert orjson.loads(body)["id"] == completion_id


async def test_the_metadata_address_is_allowed_only_when_listed(
    primary: SimProvider, backup: SimProvider, tmp_path: Path
) -> None:
    plan = plan_with(primary, backup, ["169.254.169.254"])
    async with running_gateway(plan, data_dir=tmp_path) as gw:
        client = await sdk(gw)
        raw = await ask(client, METADATA_URL, via="metadata")
        assert raw.status_code == 202, raw.text  # the operator listed it: their choice
        await client.close()


async def test_the_generated_secret_is_reused_after_a_restart(
    primary: SimProvider, backup: SimProvider, tmp_path: Path
) -> None:
    plan = plan_with(primary, backup, [])
    secrets: list[str] = []
    for _ in range(2):
        async with running_gateway(plan, data_dir=tmp_path) as gw:
            assert gw.app.journal_service is not None
            secrets.append(gw.app.journal_service.callback_secret)
    assert secrets[0] == secrets[1] == (tmp_path / CALLBACK_SECRET_FILE).read_text().strip()
