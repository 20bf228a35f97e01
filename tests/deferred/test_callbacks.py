"""Signed callbacks from the runner to a real local HTTP receiver, and the background
loop's start and stop."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from standby.deferred.callbacks import (
    COMPLETED_EVENT,
    FAILED_EVENT,
    CallbackSender,
    verify_signature,
)
from standby.deferred.policy import CallbackHosts
from standby.deferred.runner import DeferredRunner
from standby.routing.router import Router
from tests.deferred.doubles import (
    BODY,
    PLAN,
    SECRET,
    WAIT,
    Clock,
    NoMetrics,
    OpenGate,
    Receiver,
    Service,
    Upstream,
    as_service,
    defer,
)

LOOPBACK = CallbackHosts(["127.0.0.1"])


async def test_a_completion_is_posted_signed_and_retried_until_accepted(
    runner: DeferredRunner,
    service: Service,
    upstream: Upstream,
    receiver: tuple[Receiver, str],
    clock: Clock,
) -> None:
    rec, url = receiver
    rec.statuses = [500]
    upstream.down = False
    await defer(runner, service, "req_0f", (b"standby-callback-url", url.encode()))
    await runner.tick()
    async with asyncio.timeout(WAIT):
        await rec.arrived.wait()
    assert len(rec.got) == 2
    headers, body = rec.got[-1]
    assert headers["Standby-Event"] == COMPLETED_EVENT
    assert verify_signature(SECRET, headers["Standby-Signature"], body, now=clock.now)
    assert orjson.loads(body)["id"] == "chatcmpl-0f"


async def test_an_expiry_is_posted_as_a_failed_event(
    runner: DeferredRunner, service: Service, receiver: tuple[Receiver, str], clock: Clock
) -> None:
    rec, url = receiver
    body = {**BODY, "metadata": {"standby_callback": url}}
    await defer(runner, service, "req_10", body=body)
    clock.now += 7200
    await runner.tick()
    async with asyncio.timeout(WAIT):
        await rec.arrived.wait()
    headers, payload = rec.got[0]
    assert headers["Standby-Event"] == FAILED_EVENT
    notice = orjson.loads(payload)
    assert (notice["id"], notice["status"]) == ("chatcmpl-10", "failed")
    assert notice["error"]["code"] == "deferred_expired"


async def test_run_completes_in_the_background_and_stop_ends_it(
    upstream: Upstream, service: Service, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    upstream.down = False
    router = Router(PLAN, {"a": upstream}, OpenGate(), NoMetrics())
    runner = DeferredRunner(router, as_service(service), interval=0.01)  # the real clock
    await defer(runner, service, "req_11", (b"standby-callback-url", url.encode()))
    task = asyncio.create_task(runner.run())
    async with asyncio.timeout(WAIT):
        await rec.arrived.wait()
    await runner.stop()
    assert task.done()
    assert [kind for kind, _, _ in service.finals()] == ["completed"]


async def test_stop_cancels_tries_in_flight_and_leaves_them_deferred(
    runner: DeferredRunner, service: Service, upstream: Upstream
) -> None:
    upstream.hold = asyncio.Event()
    await defer(runner, service, "req_12")
    task = asyncio.create_task(runner.run())
    await upstream.wait_calls(1)
    await runner.stop()
    assert task.cancelled() or task.done()
    assert service.finals() == [] and "req_12" in service.rows


async def test_a_receiver_that_keeps_failing_is_given_up_after_the_last_try(
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    rec.statuses = [500, 502, 503, 200]
    sender = CallbackSender(SECRET, LOOPBACK, clock=lambda: 0.0, tries=3, pause=0.01)
    async with asyncio.timeout(WAIT):
        assert not await sender.deliver(url, COMPLETED_EVENT, b"{}")
    await sender.aclose()
    assert len(rec.got) == 3


async def test_a_silent_receiver_costs_at_most_the_timeout_per_try(
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    rec.hold = asyncio.Event()  # never set: the receiver accepts and never answers
    sender = CallbackSender(SECRET, LOOPBACK, clock=lambda: 0.0, timeout=0.2, tries=2, pause=0.01)
    async with asyncio.timeout(WAIT):
        assert not await sender.deliver(url, COMPLETED_EVENT, b"{}")
    await sender.aclose()
    assert len(rec.got) == 2


def test_there_is_no_unsigned_mode() -> None:
    with pytest.raises(ValueError, match="always signed"):
        CallbackSender("", LOOPBACK, clock=lambda: 0.0)


async def test_closing_cancels_deliveries_still_waiting_after_the_grace(
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    rec.hold = asyncio.Event()
    sender = CallbackSender(SECRET, LOOPBACK, clock=lambda: 0.0, timeout=60)
    task = sender.send(url, COMPLETED_EVENT, b"{}")
    await rec.entered.wait()
    async with asyncio.timeout(WAIT):
        await sender.aclose(grace=0.05)
    assert task.cancelled()
