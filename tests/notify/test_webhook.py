"""The signed webhook: signatures, and delivery to a real HTTP receiver on loopback
(retries on 503 and 429, none on 400, connection failures, timeouts, redirects)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from standby.notify.channels import build
from standby.notify.message import Notice
from standby.notify.retry import Retry
from standby.notify.webhook import WebhookChannel, sign, verify
from standby.plan.alerts import Channel as ChannelConfig
from tests.notify.receivers import (
    START,
    Answer,
    Clock,
    Pauses,
    Receiver,
    closed_port,
    serving,
    wiring,
)

SECRET = "whsec_notify_unit_secret"
NOTICE = Notice(
    incident_id="inc-1",
    event="opened",
    title="Chat assistant is failing over",
    body="OpenAI answers 503; requests go to Anthropic.",
    severity="critical",
    component="Chat assistant",
    status="investigating",
    at=START,
    link="https://status.example.com/incidents/inc-1",
)


def channel(url: str, clock: Clock, pauses: Pauses, **fields: Any) -> WebhookChannel:
    config = ChannelConfig(kind="webhook", url=url, secret=SECRET)
    built = build("hooks", config, wiring(clock, pauses, **fields))
    assert isinstance(built, WebhookChannel)
    return built


# -- signatures -------------------------------------------------------------------------

BODY = b'{"incident_id":"inc-1"}'
GOOD = sign(SECRET, 1000, BODY)


VERIFY = {
    "valid": (SECRET, "1000", BODY, GOOD, 1000.0, True),
    "inside the tolerance": (SECRET, 1000, BODY, GOOD, 1299.0, True),
    "a replay, too late": (SECRET, "1000", BODY, GOOD, 1301.0, False),
    "from the future": (SECRET, "1000", BODY, GOOD, 699.0, False),
    "the timestamp is signed too": (SECRET, "1001", BODY, GOOD, 1000.0, False),
    "so is every byte": (SECRET, "1000", BODY + b" ", GOOD, 1000.0, False),
    "another secret": ("other", "1000", BODY, GOOD, 1000.0, False),
    "no secret": ("", "1000", BODY, GOOD, 1000.0, False),
    "no scheme": (SECRET, "1000", BODY, GOOD.removeprefix("sha256="), 1000.0, False),
    "not a timestamp": (SECRET, "soon", BODY, GOOD, 1000.0, False),
    "wrong digest": (SECRET, "1000", BODY, "sha256=" + "0" * 64, 1000.0, False),
}


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "signature", "now", "ok"),
    list(VERIFY.values()),
    ids=list(VERIFY),
)
def test_verify(
    secret: str, timestamp: str | int, body: bytes, signature: str, now: float, ok: bool
) -> None:
    assert verify(secret, timestamp, body, signature, now) is ok


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), b"1000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1000, BODY) == f"sha256={expected}"


# -- delivery ---------------------------------------------------------------------------


async def test_the_receiver_verifies_the_signature_and_timestamp() -> None:
    clock, pauses = Clock(), Pauses()
    async with serving(Receiver()) as receiver:
        hooks = channel(receiver.url, clock, pauses)
        try:
            delivery = await hooks.send(NOTICE)
        finally:
            await hooks.aclose()
    assert delivery.ok and delivery.status == 200 and delivery.attempts == 1
    assert delivery.at == START and delivery.error is None
    [got] = receiver.got
    headers = got.headers
    assert headers["X-Standby-Timestamp"] == str(int(START))
    stamp, signature = headers["X-Standby-Timestamp"], headers["X-Standby-Signature"]
    assert verify(SECRET, stamp, got.body, signature, got.at)
    assert not verify(SECRET, stamp, got.body, signature, got.at + 301)
    assert headers["X-Standby-Event"] == "opened"
    assert headers["Content-Type"] == "application/json"
    assert len(headers["X-Standby-Delivery"]) == 32
    assert got.json() == NOTICE.fields()


async def test_two_503_then_200_is_delivered_on_the_third_try() -> None:
    clock, pauses = Clock(), Pauses()
    async with serving(Receiver(Answer(503), Answer(503), default=Answer(200))) as receiver:
        hooks = channel(receiver.url, clock, pauses)
        try:
            delivery = await hooks.send(NOTICE)
        finally:
            await hooks.aclose()
    assert delivery.ok and delivery.attempts == 3 and delivery.status == 200
    assert delivery.trail == ("HTTP 503", "HTTP 503", "HTTP 200")
    assert pauses.asked == [0.5, 1.0]  # backoff 1 s doubling, lower edge of the jitter
    # one message, one delivery id, every try signed afresh
    ids = {got.headers["X-Standby-Delivery"] for got in receiver.got}
    assert len(ids) == 1
    for got in receiver.got:
        stamp, signature = got.headers["X-Standby-Timestamp"], got.headers["X-Standby-Signature"]
        assert verify(SECRET, stamp, got.body, signature, got.at)


async def test_a_400_is_not_retried() -> None:
    clock, pauses = Clock(), Pauses()
    answer = Answer(400, body=b'{"error": "unknown field"}')
    async with serving(Receiver(default=answer)) as receiver:
        hooks = channel(receiver.url, clock, pauses)
        try:
            delivery = await hooks.send(NOTICE)
        finally:
            await hooks.aclose()
    assert not delivery.ok and delivery.attempts == 1 and delivery.status == 400
    assert delivery.error == 'HTTP 400: {"error": "unknown field"}'
    assert len(receiver.got) == 1 and pauses.asked == []


async def test_it_gives_up_after_four_tries() -> None:
    clock, pauses = Clock(), Pauses()
    async with serving(Receiver(default=Answer(500))) as receiver:
        hooks = channel(receiver.url, clock, pauses)
        try:
            delivery = await hooks.send(NOTICE)
        finally:
            await hooks.aclose()
    assert not delivery.ok and delivery.attempts == 4 and len(receiver.got) == 4
    assert delivery.error == "HTTP 500" and pauses.asked == [0.5, 1.0, 2.0]


async def test_429_waits_out_retry_after_up_to_the_cap() -> None:
    clock, pauses = Clock(), Pauses()
    answers = [
        Answer(429, headers={"Retry-After": "7"}),
        Answer(429, headers={"Retry-After": "3600"}),
    ]
    async with serving(Receiver(*answers)) as receiver:
        hooks = channel(receiver.url, clock, pauses)
        try:
            delivery = await hooks.send(NOTICE)
        finally:
            await hooks.aclose()
    assert delivery.ok and delivery.attempts == 3
    assert pauses.asked == [7.0, 30.0]


async def test_a_refused_connection_is_retried_and_reported() -> None:
    clock, pauses = Clock(), Pauses()
    hooks = channel(f"http://127.0.0.1:{await closed_port()}/hook", clock, pauses)
    try:
        delivery = await hooks.send(NOTICE)
    finally:
        await hooks.aclose()
    assert not delivery.ok and delivery.attempts == 4 and delivery.status is None
    assert delivery.error is not None and delivery.error.startswith("connection failed")


async def test_a_silent_receiver_times_out_each_try() -> None:
    clock, pauses = Clock(), Pauses()
    receiver = Receiver()
    receiver.hold = asyncio.Event()  # never answers
    async with serving(receiver):
        hooks = channel(receiver.url, clock, pauses, timeout=0.05, retry=Retry(tries=2))
        try:
            delivery = await hooks.send(NOTICE)
        finally:
            await hooks.aclose()
    assert not delivery.ok and delivery.attempts == 2
    assert delivery.error == "no answer within 0.05 s"


async def test_a_redirect_is_not_followed() -> None:
    clock, pauses = Clock(), Pauses()
    answer = Answer(302, headers={"Location": "http://127.0.0.1:9/elsewhere"})
    async with serving(Receiver(default=answer)) as receiver:
        hooks = channel(receiver.url, clock, pauses)
        try:
            delivery = await hooks.send(NOTICE)
        finally:
            await hooks.aclose()
    assert not delivery.ok and delivery.attempts == 1 and delivery.status == 302
    assert delivery.error == "HTTP 302 (redirects are not followed)"


async def test_an_error_body_is_read_only_up_to_the_cap() -> None:
    clock, pauses = Clock(), Pauses()
    answer = Answer(400, body=b"x" * 1_000_000)
    async with serving(Receiver(default=answer)) as receiver:
        hooks = channel(receiver.url, clock, pauses)
        try:
            delivery = await hooks.send(NOTICE)
        finally:
            await hooks.aclose()
    assert delivery.error == "HTTP 400: " + "x" * 200


async def test_no_secret_in_repr_or_errors() -> None:
    clock, pauses = Clock(), Pauses()
    path = "/hooks/T0001/B0002/tokentokentoken"
    # the receiver echoes the secret and the URL's token in its error
    answer = Answer(403, body=f"bad signature for {SECRET} at tokentokentoken".encode())
    async with serving(Receiver(default=answer), path=path) as receiver:
        hooks = channel(receiver.url, clock, pauses)
        try:
            delivery = await hooks.send(NOTICE)
        finally:
            await hooks.aclose()
    assert delivery.error == "HTTP 403: bad signature for *** at ***"
    text = repr(hooks) + repr(delivery)
    assert SECRET not in text and "tokentoken" not in text and "/hooks" not in text
    assert repr(hooks) == f"<WebhookChannel hooks {receiver.url.split('/hooks')[0]} signed>"


async def test_a_channel_without_secret_sends_unsigned() -> None:
    clock, pauses = Clock(), Pauses()
    async with serving(Receiver()) as receiver:
        config = ChannelConfig(kind="webhook", url=receiver.url)
        hooks = build("plain", config, wiring(clock, pauses))
        try:
            delivery = await hooks.send(NOTICE)
        finally:
            await hooks.aclose()
    assert delivery.ok
    assert "X-Standby-Signature" not in receiver.got[0].headers
