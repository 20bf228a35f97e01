"""Fault catalogue, transport and reply-shape faults: F05-F08, F19.

The real gateway on loopback, the official ``openai`` SDK as the client, simulated
providers upstream. Deadlines are short (first token 1 s) and configured; nothing sleeps.
"""

from __future__ import annotations

import pytest

from standby.sim import Fault, SimProvider
from tests.conftest import two_target_plan
from tests.e2e.faults_support import closed_port, seen, serve

STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
PRIMARY = "primary/gpt-4o-mini"


# -- F05 TCP reset before headers -----------------------------------------------------------


@STREAMS
async def test_f05_one_reset_is_retried_on_the_same_target(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("reset", times=1))
    async with serve(two_target_plan(primary, backup)) as gw:
        got = await gw.ask(stream=stream)
    assert (got.provider, got.attempts) == ("primary", 2)
    assert got.text == primary.expected_text()
    assert seen(primary) == ["reset", "ok"]
    assert backup.requests == []


@STREAMS
async def test_f05_persistent_reset_fails_over_after_one_retry(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("reset"))
    async with serve(two_target_plan(primary, backup)) as gw:
        got = await gw.ask(stream=stream)
    assert (got.provider, got.attempts) == ("backup", 3)
    assert got.text == backup.expected_text()
    assert seen(primary) == ["reset", "reset"]
    assert len(backup.requests) == 1


# -- F06 connection refused / DNS failure / TLS error ---------------------------------------


@pytest.mark.parametrize("how", ["refused", "dns", "tls"])
@STREAMS
async def test_f06_unreachable_provider_fails_over_at_once(
    primary: SimProvider, backup: SimProvider, stream: bool, how: str
) -> None:
    plan = two_target_plan(primary, backup)
    plan["providers"]["primary"]["base_url"] = {
        "refused": f"http://127.0.0.1:{closed_port()}/v1",
        "dns": "http://primary.standby-test.invalid/v1",
        # TLS spoken to a plain-HTTP port: the handshake fails
        "tls": primary.base_url.replace("http://", "https://"),
    }[how]
    async with serve(plan) as gw:
        got = await gw.ask(stream=stream)
        health = await gw.target(PRIMARY)
    assert (got.provider, got.attempts) == ("backup", 2), "nothing was sent: no retry there"
    assert got.text == backup.expected_text()
    assert got.seconds < 0.9, "a refused connection is known at once, not at a deadline"
    assert primary.requests == []
    assert health["consecutive_failures"] == 1


# -- F07 silent provider --------------------------------------------------------------------


@STREAMS
async def test_f07_silent_provider_hits_the_deadline_once_then_is_skipped(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("silent"))
    plan = two_target_plan(primary, backup, breaker={"ejection": "30s"})
    async with serve(plan) as gw:
        first = await gw.ask(stream=stream)
        second = await gw.ask(stream=stream)
        health = await gw.target(PRIMARY)
    assert (first.provider, first.attempts) == ("backup", 2)
    assert 1.0 <= first.seconds < 3.0, "the first-token deadline (1 s) decides"
    assert (second.provider, second.attempts) == ("backup", 1)
    assert second.seconds < 1.0
    assert first.text == second.text == backup.expected_text()
    assert seen(primary) == ["silent"], "a silent target is never retried"
    assert health["state"] == "open"


# -- F08 slow first token -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "headers_early"),
    [(False, False), (True, False), (True, True)],
    ids=["plain", "stream", "stream-headers-early"],
)
async def test_f08_slow_first_token_fails_over_at_the_deadline(
    primary: SimProvider, backup: SimProvider, stream: bool, headers_early: bool
) -> None:
    primary.set_fault(Fault("slow_first_token", delay=3, headers_early=headers_early))
    async with serve(two_target_plan(primary, backup)) as gw:
        got = await gw.ask(stream=stream)
    assert (got.provider, got.attempts) == ("backup", 2)
    assert got.text == backup.expected_text()
    assert len(set(got.ids)) == 1
    assert 1.0 <= got.seconds < 2.5, "the first-token deadline (1 s) decides, not the 3 s"
    assert seen(primary) == ["slow_first_token"]
    assert len(backup.requests) == 1


# -- F19 200 with an error body, or an HTML page --------------------------------------------


@pytest.mark.parametrize(
    ("fault", "primary_saw"),
    [
        (Fault("error_body_200"), ["error_body_200"]),
        (Fault("html"), ["html"]),
        (Fault("html", status=502), ["html", "html"]),  # a 5xx page: one retry there first
    ],
    ids=["error-body-200", "html-200", "html-502"],
)
@STREAMS
async def test_f19_error_body_or_html_fails_over(
    primary: SimProvider, backup: SimProvider, stream: bool, fault: Fault, primary_saw: list[str]
) -> None:
    primary.set_fault(fault)
    async with serve(two_target_plan(primary, backup)) as gw:
        got = await gw.ask(stream=stream)
    assert got.provider == "backup"
    assert got.attempts == len(primary_saw) + 1
    assert got.text == backup.expected_text()
    assert got.finish_reason == "stop"
    assert seen(primary) == primary_saw
    assert len(backup.requests) == 1


async def test_f19_unparseable_json_reply_fails_over(
    primary: SimProvider, backup: SimProvider
) -> None:
    primary.set_fault(Fault("malformed_event"))  # without a stream: the body is not JSON
    async with serve(two_target_plan(primary, backup)) as gw:
        got = await gw.ask(stream=False)
    assert (got.provider, got.attempts) == ("backup", 2)
    assert got.text == backup.expected_text()
    assert seen(primary) == ["malformed_event"]
