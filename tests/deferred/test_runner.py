"""DeferredRunner over a real Router, a scripted provider, an in-memory journal and a
hand-moved clock: one ``tick()`` at a time, waiting on tries with ``idle()``."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from standby.canonical import Call, Deadlines, Reply
from standby.deferred.runner import DeferredRunner
from standby.errors import UpstreamStatus
from standby.routing.router import Router
from tests.deferred.doubles import (
    BODY,
    OPT_IN,
    PLAN,
    Clock,
    NoMetrics,
    OpenGate,
    Service,
    Upstream,
    as_service,
    defer,
    scope,
)

# -- the 202 ---------------------------------------------------------------------------------


async def test_an_opted_in_request_gets_a_202_and_a_journaled_deferral(
    runner: DeferredRunner, service: Service, clock: Clock
) -> None:
    deferral = await defer(runner, service, "req_00ff", (b"standby-callback-url", b"http://h/cb"))
    assert deferral.completion_id == "chatcmpl-00ff"  # the wire's Location
    assert deferral.retry_after == 2  # the wire's Retry-After
    assert deferral.body() == {
        "id": "chatcmpl-00ff",
        "object": "chat.completion.deferred",
        "status": "deferred",
        "created": int(clock.now),
        "model": "m",
        "retry_after": 2,
        "expires_at": int(clock.now) + 3600,
    }
    assert service.events == [
        ("dfr", "req_00ff", {"until": clock.now + 3600, "callback": "http://h/cb"})
    ]


@pytest.mark.parametrize(
    ("headers", "body", "path"),
    [
        ((), BODY, "/v1/chat/completions"),  # not opted in
        ((OPT_IN,), {**BODY, "stream": True}, "/v1/chat/completions"),
        ((OPT_IN,), {**BODY, "model": "strict"}, "/v1/chat/completions"),  # route forbids
        ((OPT_IN,), {"model": "m", "input": "x"}, "/v1/embeddings"),
    ],
)
async def test_requests_that_may_not_be_deferred_are_left_to_the_503(
    runner: DeferredRunner,
    service: Service,
    headers: tuple[tuple[bytes, bytes], ...],
    body: dict[str, Any],
    path: str,
) -> None:
    route = runner.router.resolve(body["model"])
    assert await runner.maybe_defer("req_1", scope(*headers, path=path), body, route) is None
    assert service.events == []


@pytest.mark.parametrize("config", [{"redact": True}, {"enabled": False}])
async def test_nothing_is_deferred_when_the_journal_cannot_keep_the_body(
    upstream: Upstream, clock: Clock, config: dict[str, Any]
) -> None:
    service = Service(clock, **config)
    runner = DeferredRunner(
        Router(PLAN, {"a": upstream}, OpenGate(), NoMetrics()), as_service(service), clock=clock
    )
    deferral = await runner.maybe_defer("req_1", scope(OPT_IN), BODY, runner.router.resolve("m"))
    assert deferral is None


# -- the loop --------------------------------------------------------------------------------


async def test_a_failed_try_pauses_the_row_then_a_recovered_target_completes_it(
    runner: DeferredRunner, service: Service, upstream: Upstream, clock: Clock
) -> None:
    await defer(runner, service, "req_0a")
    await runner.tick()
    await runner.idle()
    assert upstream.calls == 1
    assert service.tries == [("req_0a", clock.now + 1.0)]
    clock.now += 0.9
    await runner.tick()  # still pausing, although the store offers the row again
    await runner.idle()
    assert upstream.calls == 1
    clock.now += 0.1
    upstream.down = False
    await runner.tick()
    await runner.idle()
    assert upstream.calls == 2
    [(kind, rid, fields)] = service.finals()
    assert (kind, rid, fields["completion_id"]) == ("completed", "req_0a", "chatcmpl-0a")
    assert orjson.loads(fields["response"])["id"] == "chatcmpl-0a"
    assert (fields["provider"], fields["model"]) == ("a", "m-real")
    assert fields["attempts"][0][:2] == ("a/m", "ok")
    clock.now += 5
    await runner.tick()  # the completion reached the store: nothing left to try
    await runner.idle()
    assert upstream.calls == 2 and len(service.finals()) == 1


async def test_pauses_grow_with_each_failed_try(
    runner: DeferredRunner, service: Service, clock: Clock
) -> None:
    await defer(runner, service, "req_0b")
    start = clock.now
    for _ in range(4):
        await runner.tick()
        await runner.idle()
        clock.now = service.tries[-1][1]
    assert [round(at - start, 6) for _, at in service.tries] == [1.0, 3.0, 7.0, 15.0]


async def test_a_completed_row_is_not_tried_again_before_the_store_has_it(
    runner: DeferredRunner, service: Service, upstream: Upstream
) -> None:
    upstream.down = False
    await defer(runner, service, "req_0c")
    await runner.tick()
    await runner.idle()

    async def late_flush() -> None:  # the database is one batch behind
        pass

    service.flush = late_flush  # type: ignore[method-assign]
    await runner.tick()
    await runner.idle()
    assert upstream.calls == 1


async def test_concurrency_and_rate_bound_how_fast_tries_start(
    runner: DeferredRunner, service: Service, upstream: Upstream, clock: Clock
) -> None:
    upstream.down = False
    upstream.hold = asyncio.Event()
    for n in range(5):
        await defer(runner, service, f"req_{n:02x}")
        clock.now += 0.001
    await runner.tick()
    assert upstream.calls <= 2
    await upstream.wait_calls(2)
    await runner.tick()  # both slots busy
    assert len(runner.in_flight) == 2
    upstream.hold.set()
    await runner.idle()
    await runner.tick()  # slots free, but the two tokens are spent
    assert not runner.in_flight
    clock.now += 0.5
    await runner.tick()
    assert runner.in_flight == ["req_02"]  # one token per half second, oldest first
    await runner.idle()
    assert [rid for _, rid, _ in service.finals()] == ["req_00", "req_01", "req_02"]


async def test_a_row_past_its_deadline_fails_with_a_504(
    runner: DeferredRunner, service: Service, upstream: Upstream, clock: Clock
) -> None:
    await defer(runner, service, "req_0d")
    clock.now += 3600
    await runner.tick()
    [(kind, rid, fields)] = service.finals()
    assert (kind, rid, fields["status"]) == ("failed", "req_0d", 504)
    error = orjson.loads(fields["response"])["error"]
    assert error["code"] == "deferred_expired"
    assert "deferred request expired" in error["message"]
    assert upstream.calls == 0


async def test_a_final_provider_verdict_fails_the_row_with_the_providers_reason(
    runner: DeferredRunner, service: Service, upstream: Upstream
) -> None:
    reason = {
        "error": {
            "message": "no",
            "type": "invalid_request_error",
            "param": None,
            "code": "content_policy_violation",
        }
    }

    async def refuse(call: Call, deadlines: Deadlines) -> Reply:
        raise UpstreamStatus("no", status=400, kind="content_policy", body=reason)

    upstream.send = refuse  # type: ignore[method-assign]
    await defer(runner, service, "req_0e")
    await runner.tick()
    await runner.idle()
    [(kind, _, fields)] = service.finals()
    assert (kind, fields["status"]) == ("failed", 400)
    assert orjson.loads(fields["response"]) == reason
