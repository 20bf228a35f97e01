"""Fixtures of the deferred-completion tests: fresh doubles and a runner over them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from standby.deferred.runner import DeferredRunner
from standby.routing.router import Router
from tests.deferred.doubles import (
    PLAN,
    Clock,
    NoMetrics,
    OpenGate,
    Receiver,
    Service,
    Upstream,
    as_service,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


@pytest.fixture
def service(clock: Clock) -> Service:
    return Service(clock)


@pytest.fixture
async def runner(
    upstream: Upstream, service: Service, clock: Clock
) -> AsyncIterator[DeferredRunner]:
    router = Router(PLAN, {"a": upstream}, OpenGate(), NoMetrics())
    runner = DeferredRunner(
        router, as_service(service), clock=clock, interval=1.0, rate=2.0, concurrency=2
    )
    runner.callbacks.pause = 0.01
    yield runner
    await runner.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/cb", rec.handle)
    app_runner = web.AppRunner(app)
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield rec, f"http://127.0.0.1:{port}/cb"
    if rec.hold is not None:
        rec.hold.set()  # let held handlers end, or cleanup waits for them
    await app_runner.cleanup()
