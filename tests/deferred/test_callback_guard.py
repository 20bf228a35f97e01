"""The callback rule applied with I/O: a scripted resolver plays DNS, a real receiver on
127.0.0.1 plays the address a rebinding name points at."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.abc import ResolveResult
from yarl import URL

from standby.deferred import callbacks as cb
from standby.deferred.callbacks import (
    COMPLETED_EVENT,
    CallbackRefused,
    CallbackSender,
    GuardedResolver,
    verify_signature,
)
from standby.deferred.policy import CallbackHosts
from standby.deferred.runner import DeferredRunner
from standby.errors import InvalidRequest
from standby.routing.router import Router
from tests.deferred.doubles import (
    OPT_IN,
    PLAN,
    SECRET,
    WAIT,
    Clock,
    NoMetrics,
    OpenGate,
    Receiver,
    Resolver,
    Service,
    Upstream,
    as_service,
    defer,
    scope,
)

PUBLIC_IP = "93.184.216.34"


def hooks_url(receiver_url: str, host: str = "hooks.test") -> str:
    """The receiver's URL under a name the scripted resolver answers for."""
    return str(URL(receiver_url).with_host(host))


def runner_with(
    upstream: Upstream, service: Service, clock: Clock, dns: Resolver
) -> DeferredRunner:
    router = Router(PLAN, {"a": upstream}, OpenGate(), NoMetrics())
    return DeferredRunner(router, as_service(service), clock=clock, resolver=dns)


async def complete(runner: DeferredRunner) -> None:
    """One pass that answers the deferred row, and every callback it starts, done."""
    await runner.tick()
    async with asyncio.timeout(WAIT):
        await runner.idle()
        await runner.callbacks.idle()


# -- DNS rebinding -----------------------------------------------------------------------


async def test_a_name_that_rebinds_to_loopback_after_the_202_is_not_called_back(
    upstream: Upstream,
    clock: Clock,
    receiver: tuple[Receiver, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec, url = receiver
    dns = Resolver(PUBLIC_IP, "127.0.0.1")  # public when asked, loopback when used
    service = Service(clock, callback_hosts=[])
    runner = runner_with(upstream, service, clock, dns)
    callback = (b"standby-callback-url", hooks_url(url).encode())
    assert (await defer(runner, service, "req_0a", callback)).completion_id == "chatcmpl-0a"
    upstream.down = False
    with caplog.at_level(logging.ERROR, logger="standby.deferred"):
        await complete(runner)
    await runner.stop()
    assert dns.asked == ["hooks.test", "hooks.test"]  # at request time, then to connect
    assert rec.got == []  # the connection never reached 127.0.0.1
    assert [kind for kind, _, _ in service.finals()] == ["completed"]
    assert "'hooks.test' resolves to 127.0.0.1, a loopback address" in caplog.text


async def test_the_same_name_listed_may_resolve_to_loopback(
    upstream: Upstream, clock: Clock, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    dns = Resolver("127.0.0.1")
    service = Service(clock, callback_hosts=["hooks.test"])
    runner = runner_with(upstream, service, clock, dns)
    await defer(runner, service, "req_0b", (b"standby-callback-url", hooks_url(url).encode()))
    upstream.down = False
    await complete(runner)
    await runner.stop()
    assert dns.asked == ["hooks.test"]  # a listed host is not looked up at request time
    headers, body = rec.got[0]
    assert headers["Standby-Event"] == COMPLETED_EVENT
    assert verify_signature(SECRET, headers["Standby-Signature"], body, now=clock.now)


async def test_a_name_resolving_to_a_private_address_is_refused_at_request_time(
    upstream: Upstream, clock: Clock
) -> None:
    dns = Resolver("10.0.0.7")
    service = Service(clock, callback_hosts=[])
    runner = runner_with(upstream, service, clock, dns)
    service.accept("req_0c", {"model": "m", "messages": []})
    route = runner.router.resolve("m")
    body = {"model": "m", "messages": [], "metadata": {"standby_callback": "https://intra.test/"}}
    with pytest.raises(InvalidRequest) as caught:
        await runner.maybe_defer("req_0c", scope(OPT_IN), body, route)
    await runner.stop()
    error = caught.value
    assert (error.status, error.param, error.code) == (
        400,
        "metadata.standby_callback",
        "callback_not_allowed",
    )
    assert error.message == (
        "The callback URL is not allowed: 'intra.test' resolves to 10.0.0.7, a private address."
    )
    assert service.events == []  # nothing deferred


# -- the guarded resolver ----------------------------------------------------------------


class Answers(Resolver):
    """A resolver answering several addresses at once."""

    def __init__(self, *addresses: str) -> None:
        super().__init__(*addresses)
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found: list[ResolveResult] = []
        for address in self.addresses:
            self.answers = [address]
            found += await super().resolve(host, port, family)
        return found


async def test_the_resolver_keeps_only_the_addresses_a_callback_may_reach() -> None:
    guard = GuardedResolver(CallbackHosts(), Answers("127.0.0.1", PUBLIC_IP, "169.254.169.254"))
    assert [info["host"] for info in await guard.resolve("mixed.test", 443)] == [PUBLIC_IP]
    with pytest.raises(CallbackRefused, match=r"'bad\.test' resolves to 127\.0\.0\.1"):
        await GuardedResolver(CallbackHosts(), Answers("127.0.0.1", "10.0.0.1")).resolve(
            "bad.test", 443
        )
    listed = GuardedResolver(CallbackHosts(["good.test"]), Answers("10.0.0.1"))
    assert [info["host"] for info in await listed.resolve("good.test", 443)] == ["10.0.0.1"]
    with pytest.raises(CallbackRefused, match="not one of the hosts"):
        await listed.resolve("other.test", 443)


async def test_the_default_resolver_is_guarded_too(
    receiver: tuple[Receiver, str], caplog: pytest.LogCaptureFixture
) -> None:
    rec, url = receiver
    name = socket.gethostname()  # a name the system resolver answers without a network
    try:
        found = {info[4][0] for info in socket.getaddrinfo(name, None)}
    except OSError:
        found = set()
    if "127.0.0.1" not in found:
        pytest.skip(f"{name} does not resolve to 127.0.0.1 here")
    sender = CallbackSender(SECRET, CallbackHosts(), clock=lambda: 0.0, tries=1)
    with caplog.at_level(logging.ERROR, logger="standby.deferred"):
        assert not await sender.deliver(hooks_url(url, name), COMPLETED_EVENT, b"{}")
    await sender.aclose()
    assert rec.got == []
    assert f"{name.lower()!r} resolves to" in caplog.text


async def test_a_lookup_that_fails_at_request_time_is_left_to_delivery() -> None:
    class Failing(Resolver):
        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    sender = CallbackSender(SECRET, CallbackHosts(), clock=lambda: 0.0, resolver=Failing("x"))
    await sender.check("https://not-yet.test/cb")  # no refusal: delivery checks again
    await sender.aclose()


async def test_a_lookup_that_hangs_at_request_time_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Hanging(Resolver):
        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    monkeypatch.setattr(cb, "RESOLVE_TIMEOUT", 0.01)
    sender = CallbackSender(SECRET, CallbackHosts(), clock=lambda: 0.0, resolver=Hanging("x"))
    async with asyncio.timeout(WAIT):
        await sender.check("https://slow.test/cb")
    await sender.aclose()


async def test_a_refused_url_is_not_even_tried_at_delivery(
    receiver: tuple[Receiver, str], caplog: pytest.LogCaptureFixture
) -> None:
    rec, url = receiver
    sender = CallbackSender(SECRET, CallbackHosts(), clock=lambda: 0.0, tries=3, pause=0.01)
    with caplog.at_level(logging.ERROR, logger="standby.deferred"):
        assert not await sender.deliver(url, COMPLETED_EVENT, b"{}")
    await sender.aclose()
    assert rec.got == []
    assert "refused: 127.0.0.1 is a loopback address" in caplog.text


# -- no redirects --------------------------------------------------------------------------


@pytest.fixture
async def redirecting() -> AsyncIterator[tuple[list[str], str]]:
    """A receiver whose ``/cb`` redirects to ``/elsewhere``; the list records the paths hit."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(request.path)
        if request.path == "/cb":
            raise web.HTTPTemporaryRedirect("/elsewhere")
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/cb", handle)
    app.router.add_post("/elsewhere", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield hits, f"http://127.0.0.1:{port}/cb"
    await runner.cleanup()


async def test_a_redirect_is_not_followed_nor_retried(
    redirecting: tuple[list[str], str],
) -> None:
    hits, url = redirecting
    sender = CallbackSender(SECRET, CallbackHosts(["127.0.0.1"]), clock=lambda: 0.0, pause=0.01)
    assert not await sender.deliver(url, COMPLETED_EVENT, b"{}")
    await sender.aclose()
    assert hits == ["/cb"]
