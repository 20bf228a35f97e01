"""Fault catalogue, error statuses: F01-F04, F13, F14, F17, F18, F20.

Each test runs the real gateway on loopback in front of simulated providers and talks to
it with the official ``openai`` SDK; it checks what the client got and what every
provider saw. Deadlines and backoffs are configured short; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import openai
import pytest
from openai.types import CompletionUsage

from standby.sim import Fault, SimProvider
from tests.conftest import two_target_plan
from tests.e2e.faults_support import (
    SECRETS,
    closed_port,
    gaps,
    seen,
    serve,
    single_target_plan,
)

STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
PRIMARY = "primary/gpt-4o-mini"


# -- F01 429 with Retry-After ---------------------------------------------------------------


@STREAMS
async def test_f01_retry_after_with_a_backup_fails_over_at_once(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("rate_limit", retry_after=30))
    async with serve(two_target_plan(primary, backup)) as gw:
        answers = [await gw.ask(stream=stream) for _ in range(3)]
        health = await gw.target(PRIMARY)
    for got in answers:
        assert got.provider == "backup"
        assert got.text == backup.expected_text()
    assert answers[0].attempts == 2
    assert answers[0].seconds < 5, "failed over at once, did not wait out Retry-After: 30"
    assert [a.attempts for a in answers[1:]] == [1, 1], "the held primary is skipped"
    assert seen(primary) == ["rate_limit"], "never hammer a provider that asked us to wait"
    assert len(backup.requests) == 3
    assert health["held_for"] > 20


@STREAMS
async def test_f01_retry_after_on_a_single_target_is_honoured(
    primary: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("rate_limit", retry_after=0.2, times=1))
    async with serve(single_target_plan(primary)) as gw:
        got = await gw.ask(stream=stream, model="solo")
    assert got.provider == "primary"
    assert got.text == primary.expected_text()
    assert got.attempts == 2
    assert seen(primary) == ["rate_limit", "ok"]
    assert gaps(primary)[0] >= 0.2, "the retry came before the provider's Retry-After"


@STREAMS
async def test_f01_retry_after_beyond_the_budget_is_a_clean_503(
    primary: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("rate_limit", retry_after=30))  # max_retry_after is 5 s
    async with serve(single_target_plan(primary)) as gw:
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as caught:
            await gw.ask(stream=stream, model="solo")
        elapsed = time.monotonic() - started
    assert caught.value.status_code == 503
    assert caught.value.response.headers["retry-after"] == "30"
    assert elapsed < 5, "not waiting out 30 s"
    assert seen(primary) == ["rate_limit"]


@STREAMS
async def test_f01_retry_after_is_honoured_when_the_backup_is_down_too(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("rate_limit", retry_after=0.2, times=1))
    backup.set_fault(Fault("error", status=503))
    async with serve(two_target_plan(primary, backup)) as gw:
        got = await gw.ask(stream=stream)
    assert got.provider == "primary"
    assert got.text == primary.expected_text()
    assert seen(primary) == ["rate_limit", "ok"]
    assert gaps(primary)[0] >= 0.2


def _prefer_same_target(plan: dict[str, Any], where: str) -> dict[str, Any]:
    """``retry.prefer_same_target: true`` plan-wide, or on the route only."""
    if where == "plan":
        plan["retry"] = {**plan["retry"], "prefer_same_target": True}
    else:
        plan["routes"]["gpt-4o-mini"]["retry"] = {"prefer_same_target": True}
    return plan


WHERE = pytest.mark.parametrize("where", ["plan", "route"])


@WHERE
@STREAMS
async def test_f01_prefer_same_target_waits_out_retry_after_before_failing_over(
    primary: SimProvider, backup: SimProvider, stream: bool, where: str
) -> None:
    primary.set_fault(Fault("rate_limit", retry_after=0.2, times=1))
    async with serve(_prefer_same_target(two_target_plan(primary, backup), where)) as gw:
        got = await gw.ask(stream=stream)
    assert got.provider == "primary"
    assert got.text == primary.expected_text()
    assert got.attempts == 2
    assert seen(primary) == ["rate_limit", "ok"]
    assert gaps(primary)[0] >= 0.2, "the retry came before the provider's Retry-After"
    assert backup.requests == [], "waited for the primary instead of failing over"


@WHERE
@STREAMS
async def test_f01_prefer_same_target_fails_over_when_retry_after_is_too_long(
    primary: SimProvider, backup: SimProvider, stream: bool, where: str
) -> None:
    primary.set_fault(Fault("rate_limit", retry_after=30))  # max_retry_after is 5 s
    async with serve(_prefer_same_target(two_target_plan(primary, backup), where)) as gw:
        got = await gw.ask(stream=stream)
    assert got.provider == "backup"
    assert got.text == backup.expected_text()
    assert got.seconds < 5, "failed over at once, did not wait out Retry-After: 30"
    assert seen(primary) == ["rate_limit"]


# -- F02 429 storm without Retry-After --------------------------------------------------------


@STREAMS
async def test_f02_rate_limit_storm_opens_the_breaker_and_skips_the_primary(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("rate_limit"))
    plan = two_target_plan(primary, backup, breaker={"failures": 3, "ejection": "30s"})
    async with serve(plan) as gw:
        answers = [await gw.ask(stream=stream) for _ in range(6)]
        health = await gw.target(PRIMARY)
    assert all(a.provider == "backup" and a.text == backup.expected_text() for a in answers)
    assert [a.attempts for a in answers] == [2, 2, 2, 1, 1, 1]
    assert seen(primary) == ["rate_limit"] * 3, "the breaker must stop the storm"
    assert len(backup.requests) == 6
    assert health["state"] == "open"


@STREAMS
async def test_f02_rate_limit_storm_on_a_single_target_is_bounded(
    primary: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("rate_limit"))
    plan = single_target_plan(primary, retry={"backoff": "100ms", "max_backoff": "200ms"})
    async with serve(plan) as gw:
        with pytest.raises(openai.InternalServerError) as caught:
            await gw.ask(stream=stream, model="solo")
    assert caught.value.status_code == 503
    assert "retry-after" in caught.value.response.headers
    assert seen(primary) == ["rate_limit", "rate_limit"], "one backed-off retry, no more"
    assert gaps(primary)[0] >= 0.02, "a jittered backoff, not an immediate retry"


# -- F03 one 500 then healthy ---------------------------------------------------------------


@STREAMS
async def test_f03_one_500_is_retried_on_the_same_target(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("error", status=500, times=1))
    plan = two_target_plan(primary, backup, retry={"backoff": "40ms", "max_backoff": "80ms"})
    async with serve(plan) as gw:
        got = await gw.ask(stream=stream)
    assert got.provider == "primary"
    assert got.text == primary.expected_text()
    assert got.attempts == 2
    assert seen(primary) == ["error", "ok"]
    assert gaps(primary)[0] >= 0.02, "the retry waits a backoff"
    assert backup.requests == []


# -- F04 persistent 503 ---------------------------------------------------------------------


@STREAMS
async def test_f04_persistent_503_fails_over_and_opens_the_breaker(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("error", status=503))
    plan = two_target_plan(primary, backup, breaker={"failures": 2, "ejection": "30s"})
    async with serve(plan) as gw:
        answers = [await gw.ask(stream=stream) for _ in range(5)]
        health = await gw.target(PRIMARY)
    assert all(a.provider == "backup" and a.text == backup.expected_text() for a in answers)
    assert [a.attempts for a in answers] == [2, 2, 1, 1, 1]
    assert seen(primary) == ["error", "error"], "503 is not retried; open breaker skips it"
    assert health["state"] == "open"
    assert health["opened_count"] == 1


# -- F13 context length exceeded ------------------------------------------------------------


@STREAMS
async def test_f13_context_length_skips_the_model_and_goes_to_a_larger_one(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("context_length"))
    plan = two_target_plan(
        primary,
        backup,
        routes={
            "chat": {
                "tiers": [["primary/small-model"], ["backup/small-model"], ["backup/large-model"]]
            }
        },
    )
    async with serve(plan) as gw:
        got = await gw.ask(stream=stream, model="chat")
    assert got.provider == "backup"
    assert got.headers["x-standby-model"] == "large-model"
    assert got.model == "large-model"
    assert got.text == backup.expected_text()
    assert seen(primary) == ["context_length"]
    assert [r.body["model"] for r in backup.requests] == ["large-model"], (
        "the same model at another provider has the same context window: skip it"
    )


@STREAMS
async def test_f13_context_length_with_no_larger_target_is_the_providers_400(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("context_length"))
    async with serve(two_target_plan(primary, backup)) as gw:  # both targets: gpt-4o-mini
        with pytest.raises(openai.BadRequestError) as caught:
            await gw.ask(stream=stream)
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.param == "messages"
    assert seen(primary) == ["context_length"]
    assert backup.requests == [], "the same model elsewhere has the same context window"


# -- F14 content-policy rejection -----------------------------------------------------------


@STREAMS
async def test_f14_content_policy_is_final_with_the_providers_reason(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("content_policy"))
    async with serve(two_target_plan(primary, backup)) as gw:
        with pytest.raises(openai.BadRequestError) as caught:
            await gw.ask(stream=stream)
    error = caught.value
    assert error.status_code == 400
    assert error.code == "content_policy_violation"
    assert isinstance(error.body, dict)
    assert error.body["type"] == "invalid_request_error"
    assert "safety system" in error.body["message"]
    assert seen(primary) == ["content_policy"]
    assert backup.requests == [], "a policy rejection is never retried elsewhere"


# -- F17 honest accounting ------------------------------------------------------------------


@STREAMS
async def test_f17_the_answer_names_the_model_that_answered_and_its_usage(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("error", status=503))
    plan = two_target_plan(
        primary,
        backup,
        routes={"gpt-4o-mini": {"targets": ["primary/gpt-4o-mini", "backup/backup-model"]}},
    )
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if stream else {}
    async with serve(plan) as gw:
        got = await gw.ask(stream=stream, **extra)
    assert got.provider == "backup"
    assert got.headers["x-standby-model"] == "backup-model"
    assert got.model == "backup-model"
    assert got.text == backup.expected_text()
    assert got.usage == CompletionUsage(prompt_tokens=1, completion_tokens=20, total_tokens=21)
    assert [r.body["model"] for r in backup.requests] == ["backup-model"]


# -- F18 401/402/403 ------------------------------------------------------------------------

AUTH_FAULTS = pytest.mark.parametrize(
    "status", [401, 402, 403, 429], ids=["401", "402", "403", "429-quota"]
)


@AUTH_FAULTS
@STREAMS
async def test_f18_refused_key_fails_over_and_raises_an_alert(
    primary: SimProvider,
    backup: SimProvider,
    stream: bool,
    status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    primary.set_fault(Fault("auth", status=status))
    async with serve(two_target_plan(primary, backup)) as gw:
        with caplog.at_level(logging.WARNING, logger="standby"):
            first = await gw.ask(stream=stream)
            health = await gw.health()
            second = await gw.ask(stream=stream)
    alerts = [r for r in caplog.records if "ALERT" in r.getMessage()]
    assert len(alerts) == 1, "one alert for the refused key, not one per request"
    assert PRIMARY in alerts[0].getMessage()
    assert not any(secret in caplog.text for secret in SECRETS)
    assert (first.provider, first.attempts) == ("backup", 2)
    assert (second.provider, second.attempts) == ("backup", 1), "the bad key is skipped"
    assert first.text == second.text == backup.expected_text()
    assert seen(primary) == ["auth"]
    target = health["targets"][PRIMARY]
    assert target["auth_alert"] is True
    assert target["state"] == "open"
    assert health["targets"]["backup/gpt-4o-mini"]["auth_alert"] is False
    assert not any(secret in repr(health) for secret in SECRETS)


# -- F20 every target down ------------------------------------------------------------------


def _all_down(primary: SimProvider, backup: SimProvider, how: str) -> dict[str, Any]:
    plan = two_target_plan(primary, backup)
    if how == "refused":
        for name in ("primary", "backup"):
            plan["providers"][name]["base_url"] = f"http://127.0.0.1:{closed_port()}/v1"
    elif how == "silent":
        primary.set_fault(Fault("silent"))
        backup.set_fault(Fault("silent"))
        plan["timeouts"] = {"connect": "1s", "first_token": "300ms", "idle": "1s", "total": "10s"}
    else:
        primary.set_fault(Fault("error", status=503))
        backup.set_fault(
            Fault("auth", status=401) if how == "503+auth" else Fault("error", status=503)
        )
    return plan


@pytest.mark.parametrize("how", ["503", "refused", "silent", "503+auth"])
@STREAMS
async def test_f20_every_target_down_is_a_clean_503(
    primary: SimProvider, backup: SimProvider, stream: bool, how: str
) -> None:
    async with serve(_all_down(primary, backup, how)) as gw:
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as caught:
            await gw.ask(stream=stream)
        elapsed = time.monotonic() - started
        health = await gw.health()
    error = caught.value
    assert error.status_code == 503
    assert int(error.response.headers["retry-after"]) >= 1
    assert error.response.headers["content-type"].startswith("application/json")
    assert isinstance(error.body, dict)
    assert error.body["type"] == "server_error"
    assert error.body["code"] == "upstream_unavailable"
    assert elapsed < 5
    for text in (error.response.text, repr(health)):
        assert not any(secret in text for secret in SECRETS)
    if how != "refused":
        assert len(primary.requests) == 1
        assert len(backup.requests) == 1


@STREAMS
async def test_f20_the_providers_retry_after_reaches_the_client(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("error", status=503, retry_after=7))
    backup.set_fault(Fault("error", status=503, retry_after=7))
    async with serve(two_target_plan(primary, backup)) as gw:
        with pytest.raises(openai.InternalServerError) as caught:
            await gw.ask(stream=stream)
    assert caught.value.response.headers["retry-after"] == "7"


async def test_f20_silent_and_stalled_targets_end_within_the_budget(
    primary: SimProvider, backup: SimProvider
) -> None:
    """Providers that never finish cannot hold a client past the configured deadlines."""
    primary.set_fault(Fault("silent"))
    backup.set_fault(Fault("stall", after=0, delay=0))
    plan = two_target_plan(
        primary,
        backup,
        timeouts={"connect": "1s", "first_token": "300ms", "idle": "300ms", "total": "2s"},
    )
    async with serve(plan) as gw, asyncio.timeout(5):
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as caught:
            await gw.ask(stream=True)
        elapsed = time.monotonic() - started
    assert caught.value.status_code == 503
    assert elapsed < 2, "within the total budget"
    assert (seen(primary), seen(backup)) == (["silent"], ["stall"])
