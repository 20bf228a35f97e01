"""The backup capacity guard from outside: two real gateways sharing the machine's Redis,
a backup sim that allows N requests a minute, the primary killed under mixed-priority
load through the official SDK.  No high-priority request fails; low-priority ones are
deferred (where they opted in) or refused with Retry-After; the backup never sees more than its
limit.  And a client's own rate limit: OpenAI's 429 and ``x-ratelimit-*`` headers."""

from __future__ import annotations

import hashlib
import itertools
import secrets
from typing import Any

import anthropic
import openai
import pytest

from standby.sim import SimProvider
from standby.testing import running_gateway
from tests.cluster.redis_support import REDIS, redis_up
from tests.conftest import two_target_plan

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
LIMIT = 20  # the backup's requests per minute


def hashed(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


async def test_a_short_backup_serves_high_priority_first_and_never_over_its_limit(
    primary: SimProvider,
) -> None:
    if not await redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    async with SimProvider("backup", rpm=LIMIT) as backup:
        plan = two_target_plan(
            primary,
            backup,
            state={"url": REDIS, "prefix": f"e2e-capacity-{secrets.token_hex(4)}"},
            server={
                "client_keys": {
                    "checkout": {"key": hashed("sk-checkout"), "priority": "high"},
                    "batch": {"key": hashed("sk-batch"), "priority": "low"},
                }
            },
            routes={
                "gpt-4o-mini": {
                    "targets": ["primary/gpt-4o-mini", "backup/gpt-4o-mini"],
                    "defer": {"allowed": True},
                }
            },
        )
        plan["providers"]["backup"]["limits"] = {"requests_per_minute": LIMIT}
        async with running_gateway(plan) as a, running_gateway(plan) as b:
            await primary.stop()  # the primary is gone: every answer must come from backup
            gateways = itertools.cycle((a, b))
            outcomes: dict[str, list[Any]] = {"high": [], "low": []}

            async def ask(who: str, key: str, headers: dict[str, str]) -> None:
                client = openai.AsyncOpenAI(
                    base_url=next(gateways).base_url, api_key=key, max_retries=0
                )
                try:
                    reply = await client.chat.completions.with_raw_response.create(
                        model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers
                    )
                    outcomes[who].append((reply.status_code, reply.headers))
                except openai.APIStatusError as error:
                    outcomes[who].append((error.status_code, error.response.headers))
                finally:
                    await client.close()

            # 8 high-priority requests among 40 low-priority ones, interleaved, on both
            # replicas: more than the backup's minute holds
            for index in range(48):
                if index % 6 == 0:
                    await ask("high", "sk-checkout", {})
                else:  # half of them may wait for a deferred answer
                    await ask("low", "sk-batch", {"Standby-Defer": "allow"} if index % 2 else {})

    high = [status for status, _ in outcomes["high"]]
    low = [status for status, _ in outcomes["low"]]
    assert high == [200] * 8, outcomes["high"]
    # low priority may fill the minute up to 60 % (12 of 20): asked one after another,
    # requests 0-11 are 2 high and 10 low; from then on only high priority gets the backup,
    # and the other low-priority requests are deferred or refused honestly
    assert low.count(200) == int(LIMIT * 0.6) - 2, low
    assert set(low) <= {200, 202, 429}
    assert low.count(202) + low.count(429) == 40 - 10
    assert low.count(202) > 0 and low.count(429) > 0
    for status, headers in outcomes["low"]:
        if status == 429:
            assert int(headers["retry-after"]) >= 1
    assert backup.over_limit == 0  # the backup never had to refuse: never over its limit
    assert backup.stats()["count"] <= LIMIT


async def test_a_clients_own_rate_limit_is_a_429_with_openai_headers(
    primary: SimProvider, backup: SimProvider
) -> None:
    plan = two_target_plan(
        primary,
        backup,
        server={
            "client_keys": {
                "trial": {"key": hashed("sk-trial"), "requests_per_minute": 3},
                "paid": hashed("sk-paid"),
            }
        },
    )
    async with running_gateway(plan) as gw:
        trial = openai.AsyncOpenAI(base_url=gw.base_url, api_key="sk-trial", max_retries=0)
        paid = openai.AsyncOpenAI(base_url=gw.base_url, api_key="sk-paid", max_retries=0)
        try:
            remaining = []
            for _ in range(3):
                reply = await trial.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=MESSAGES
                )
                assert reply.headers["x-ratelimit-limit-requests"] == "3"
                remaining.append(reply.headers["x-ratelimit-remaining-requests"])
            assert remaining == ["2", "1", "0"]
            with pytest.raises(openai.RateLimitError) as refused:
                await trial.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            error = refused.value
            assert error.code == "rate_limit_exceeded"
            assert "requests per min (RPM): Limit 3" in error.message
            assert int(error.response.headers["retry-after"]) >= 1
            assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
            # a stream of the limited client is refused the same way, before any byte
            with pytest.raises(openai.RateLimitError):
                await trial.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, stream=True
                )
            # and on Anthropic's wire, in Anthropic's error shape
            claude = anthropic.AsyncAnthropic(
                base_url=gw.root_url, api_key="sk-trial", max_retries=0
            )
            with pytest.raises(anthropic.RateLimitError) as refused_claude:
                await claude.messages.create(model="gpt-4o-mini", max_tokens=16, messages=MESSAGES)
            await claude.close()
            body: Any = refused_claude.value.body
            assert body["error"]["type"] == "rate_limit_error"
            assert int(refused_claude.value.response.headers["retry-after"]) >= 1
            # another client is not touched by it
            ok = await paid.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MESSAGES
            )
            assert ok.status_code == 200 and "x-ratelimit-limit-requests" not in ok.headers
        finally:
            await trial.close()
            await paid.close()
    assert len(primary.requests) == 4  # the refused requests never reached a provider
