"""Standby's own connection limit is not a provider outage.

A provider's pool (``max_connections``) is tiny here and its answers are slow, so more
requests arrive than it has slots.  Those that get no slot within the short slot wait
(or find the waiting queue full) fail over to the next target; with nothing left to try
they get a 503 at once, with Retry-After.  Either way no breaker opens: the provider
was never at fault.  The real gateway on loopback, the official ``openai`` SDK.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import openai
import orjson
import pytest

from standby.sim import Fault, SimProvider
from tests.conftest import two_target_plan
from tests.e2e.faults_support import Exchange, Gateway, serve, single_target_plan

STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
PRIMARY = "primary/gpt-4o-mini"
HOLD = 2.0  # seconds each answer of the slow provider takes; the slot wait is 1 s
# the slot wait (1 s) is well inside first_token: the wait is never the provider's silence
TIMEOUTS = {"connect": "1s", "first_token": "5s", "idle": "2s", "total": "20s"}


@pytest.fixture
async def slow() -> AsyncIterator[SimProvider]:
    """A provider whose streams take HOLD seconds (4 words, one every HOLD / 4 s)."""
    async with SimProvider("primary", words=4, chunk_delay=HOLD / 4) as sim:
        yield sim


def tiny_pool(plan: dict[str, Any], size: int) -> dict[str, Any]:
    plan["providers"]["primary"]["max_connections"] = size
    plan["timeouts"] = TIMEOUTS
    return plan


async def ask_many(
    gw: Gateway, count: int, *, stream: bool, model: str = "gpt-4o-mini"
) -> list[Exchange | openai.APIStatusError]:
    async def one() -> Exchange | openai.APIStatusError:
        try:
            return await gw.ask(stream=stream, model=model)
        except openai.APIStatusError as exc:
            return exc

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def assert_no_breaker_opened(gw: Gateway, key: str) -> None:
    health = await gw.target(key)
    assert health["state"] == "closed", health
    assert health["opened_count"] == 0, health
    assert health["consecutive_failures"] == 0, health


@STREAMS
async def test_requests_beyond_the_pool_fail_over_and_no_breaker_opens(
    slow: SimProvider, backup: SimProvider, stream: bool
) -> None:
    if not stream:
        slow.set_fault(Fault("latency", delay=HOLD))
    # 2 slots on primary, 2 more may wait for one (the queue is as long as the pool)
    async with serve(tiny_pool(two_target_plan(slow, backup), 2)) as gw:
        started = time.monotonic()
        got = await ask_many(gw, 6, stream=stream)
        elapsed = time.monotonic() - started
        answers = [g for g in got if isinstance(g, Exchange)]
        assert len(answers) == 6, got
        await assert_no_breaker_opened(gw, PRIMARY)
    served = Counter(a.provider for a in answers)
    assert served == {"primary": 2, "backup": 4}
    for answer in answers:
        expected = slow if answer.provider == "primary" else backup
        assert answer.text == expected.expected_text()
        assert answer.finish_reason == "stop"
    failed_over = sorted(a.seconds for a in answers if a.provider == "backup")
    assert failed_over[0] < 0.9, "a full waiting queue fails over at once"
    assert 0.9 < failed_over[-1] < HOLD + 1, "a waiter fails over when the slot wait runs out"
    assert len(slow.requests) == 2, "the provider saw only what its pool could carry"
    assert elapsed < HOLD + 2


@STREAMS
async def test_with_no_other_target_the_caller_gets_a_quick_503(
    slow: SimProvider, stream: bool
) -> None:
    if not stream:
        slow.set_fault(Fault("latency", delay=HOLD))
    async with serve(tiny_pool(single_target_plan(slow), 1)) as gw:
        got = await ask_many(gw, 3, stream=stream, model="solo")
        await assert_no_breaker_opened(gw, PRIMARY)
        # once the pool is free again the provider serves as before
        assert (await gw.ask(stream=stream, model="solo")).text == slow.expected_text()
    answers = [g for g in got if isinstance(g, Exchange)]
    refused = [g for g in got if isinstance(g, openai.APIStatusError)]
    assert len(answers) == 1 and answers[0].text == slow.expected_text()
    assert [r.status_code for r in refused] == [503, 503]
    for error in refused:
        assert int(error.response.headers["retry-after"]) >= 1
        message = orjson.loads(error.response.content)["error"]["message"]
        assert "local_limit" in message, message
    assert len(slow.requests) == 2


@STREAMS
async def test_the_503_names_standby_not_the_providers(slow: SimProvider, stream: bool) -> None:
    if not stream:
        slow.set_fault(Fault("latency", delay=HOLD))
    async with serve(tiny_pool(single_target_plan(slow), 1)) as gw:
        got = await ask_many(gw, 2, stream=stream, model="solo")
        await assert_no_breaker_opened(gw, PRIMARY)
    refused = [g for g in got if isinstance(g, openai.APIStatusError)]
    assert len(refused) == 1
    error = orjson.loads(refused[0].response.content)["error"]
    assert error["code"] == "gateway_overloaded"
    assert error["type"] == "server_error"
    assert "Standby's own connection limit" in error["message"]
    assert "retry-after" in refused[0].response.headers
