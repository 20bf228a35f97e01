"""Test doubles for the status page's subscriptions: a hand-moved clock, a webhook
receiver and an SMTP server on loopback (in the test's own loop: nothing sleeps, every
wait is on a condition), a scripted resolver, and the plan, journal and page they share."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.message
import email.policy
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.abc import AbstractResolver
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.ext.asyncio import AsyncEngine

from standby.incidents.manager import IncidentManager
from standby.journal.incident_store import IncidentStore
from standby.journal.migrate import migrate
from standby.journal.sql import open_engine
from standby.journal.subscription_store import SubscriptionStore
from standby.notify.delivery import Sleep
from standby.plan.model import Plan
from standby.statuspage.model import PageView, build
from standby.statuspage.subscriptions import (
    Runtime,
    SubscriptionConfig,
    SubscriptionService,
)
from standby.watch.signals import Signals

T0 = 1_900_000_000.0
WAIT = 5.0  # bound on every wait for something to arrive
KEY = "unit-test-subscription-key"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Pauses:
    """An instant ``sleep`` that remembers what it was asked to wait."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


Answer = Callable[[Received], web.Response]


def echo_json(request: Received) -> web.Response:
    """A receiver that answers the challenge the documented way, and 200 otherwise."""
    data = request.json
    if data.get("type") == "subscription.challenge":
        return web.json_response({"challenge": data["challenge"]})
    return web.Response(status=200)


@dataclass
class Hook:
    """A webhook receiver on loopback; ``answer`` decides each answer (it may be
    swapped mid-test); ``gate``, when set, holds every delivery until it opens."""

    answer: Answer = echo_json
    received: list[Received] = field(default_factory=list)
    gate: asyncio.Event | None = None
    in_flight: int = 0
    most_in_flight: int = 0
    url: str = ""
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def challenges(self) -> list[Received]:
        return [r for r in self.received if r.json.get("type") == "subscription.challenge"]

    @property
    def deliveries(self) -> list[Received]:
        return [r for r in self.received if "incident" in r.json]

    async def handle(self, request: web.Request) -> web.Response:
        got = Received(dict(request.headers), await request.read())
        async with self.changed:
            self.received.append(got)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.changed.notify_all()
        try:
            if self.gate is not None and "incident" in got.json:
                await self.gate.wait()
            return self.answer(got)
        finally:
            async with self.changed:
                self.in_flight -= 1
                self.changed.notify_all()

    async def wait_for(self, check: Callable[[Hook], bool]) -> None:
        async with asyncio.timeout(WAIT), self.changed:
            await self.changed.wait_for(lambda: check(self))


@contextlib.asynccontextmanager
async def hook(answer: Answer = echo_json) -> AsyncIterator[Hook]:
    receiver = Hook(answer)
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver.url = f"http://127.0.0.1:{port}/hooks/status?team=ops"
    try:
        yield receiver
    finally:
        await runner.cleanup()


class Mailbox:
    """An SMTP server (aiosmtpd) on loopback that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.changed = asyncio.Condition()
        self.port = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        async with self.changed:
            self.messages.append((list(envelope.rcpt_tos), message))
            self.changed.notify_all()
        return "250 OK"

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(WAIT), self.changed:
            await self.changed.wait_for(lambda: len(self.messages) >= count)

    def url(self, **query: str) -> str:
        """The apprise URL of an email channel that sends here."""
        extra = "".join(f"&{key}={value}" for key, value in query.items())
        return f"mailto://127.0.0.1:{self.port}?from=status@acme.example&mode=insecure{extra}"


def text_of(message: email.message.EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def link_in(text: str, action: str) -> str:
    found = re.search(rf"(https?://\S+/status/subscriptions/\S+/{action}\?token=\S+)", text)
    assert found is not None, text
    return found.group(1)


@contextlib.asynccontextmanager
async def mailbox() -> AsyncIterator[Mailbox]:
    box = Mailbox()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(box, hostname="mx.test"), "127.0.0.1", 0
    )
    box.port = server.sockets[0].getsockname()[1]
    try:
        yield box
    finally:
        server.close()
        await server.wait_closed()


def plan(
    subscriptions: dict[str, Any] | None = None,
    *,
    email_url: str = "",
    url: str = "https://status.acme.example",
    components: dict[str, Any] | None = None,
) -> Plan:
    """Two public components over two routes; subscriptions as given."""
    rules: dict[str, Any] = {"allow_private_webhooks": True, **(subscriptions or {})}
    notify: dict[str, Any] = {}
    if email_url:
        rules["email_channel"] = "mail"
        notify = {"channels": {"mail": {"kind": "apprise", "url": email_url}}}
    return Plan.model_validate(
        {
            "providers": {"openai": {"base_url": "http://127.0.0.1:1"}},
            "routes": {
                "chat": {"targets": ["openai/gpt-4o"]},
                "embeddings": {"targets": ["openai/text-embedding-3-small"]},
            },
            "probes": {"enabled": False},
            "notify": notify,
            "status_page": {
                "title": "Acme AI status",
                "url": url,
                "components": components
                or {
                    "Chat assistant": {"routes": ["chat"]},
                    "Search": {"routes": ["embeddings"]},
                },
                "subscriptions": rules,
            },
        }
    )


async def journal(path: Path) -> AsyncEngine:
    """A migrated SQLite journal database."""
    engine = open_engine(f"sqlite:///{path / 'journal.db'}")
    await migrate(engine)
    return engine


class Page:
    """The public page over a real incident manager and store: people open, update and
    resolve incidents; ``view()`` builds the page as the gateway does."""

    def __init__(self, engine: AsyncEngine, plan: Plan, clock: Clock) -> None:
        self.plan = plan
        self.clock = clock
        self.incidents = IncidentStore(engine)
        self.manager = IncidentManager(
            plan, Signals(), self.incidents, monotonic=lambda: clock.now - T0, wall=clock
        )

    async def view(self) -> PageView:
        rows = [
            row
            for found in await self.incidents.recent(limit=50)
            if (row := await self.incidents.get(found.id)) is not None
        ]
        return build(self.plan, rows, self.clock.now)


def service(
    engine: AsyncEngine,
    page: Page,
    *,
    clock: Clock,
    resolver: AbstractResolver | None = None,
    sleep: Sleep | None = None,
    **bounds: Any,
) -> SubscriptionService:
    """The service over ``engine``, with the test's clock, DNS and (instant) sleep."""
    config = SubscriptionConfig.from_plan(page.plan, KEY, **bounds)
    runtime = Runtime(clock=clock, sleep=sleep or Pauses(), jitter=lambda: 0.5, resolver=resolver)
    return SubscriptionService(SubscriptionStore(engine), config, page.view, runtime)
