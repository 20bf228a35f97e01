"""Apprise, through a ``json://`` URL to a real receiver on loopback."""

from __future__ import annotations

import pytest

from standby.errors import PlanError
from standby.notify.apprise import AppriseChannel
from standby.notify.channels import build
from standby.notify.message import Notice
from standby.plan.alerts import Channel as ChannelConfig
from tests.notify.receivers import START, Answer, Clock, Pauses, Receiver, serving, wiring

NOTICE = Notice(
    incident_id="inc-9",
    event="resolved",
    title="Chat assistant answers again from OpenAI",
    body="OpenAI recovered at 10:41; traffic is back on the primary.",
    severity="critical",
    component="Chat assistant",
    status="resolved",
    at=START,
    link="https://status.example.com/incidents/inc-9",
)


def apprise_url(receiver_url: str, credentials: str = "") -> str:
    return receiver_url.replace("http://", f"json://{credentials}", 1)


async def test_a_notice_reaches_the_receiver_with_title_and_body() -> None:
    clock = Clock()
    async with serving(Receiver(), path="/apprise") as receiver:
        config = ChannelConfig(kind="apprise", url=apprise_url(receiver.url))
        chat = build("chat", config, wiring(clock, Pauses()))
        try:
            delivery = await chat.send(NOTICE)
        finally:
            await chat.aclose()
    assert delivery.ok and delivery.attempts == 1 and delivery.status is None
    assert delivery.at == START and delivery.channel == "chat"
    [got] = receiver.got
    payload = got.json()
    assert payload["title"] == "Resolved: Chat assistant answers again from OpenAI"
    assert payload["message"].startswith(NOTICE.body)
    assert "Status: resolved · Chat assistant" in payload["message"]
    assert NOTICE.link in payload["message"]
    assert payload["type"] == "success"


async def test_a_failure_is_reported_without_the_url_credentials() -> None:
    clock = Clock()
    async with serving(Receiver(default=Answer(500)), path="/apprise") as receiver:
        url = apprise_url(receiver.url, "admin:hunter2hunter2@")
        chat = build("chat", ChannelConfig(kind="apprise", url=url), wiring(clock, Pauses()))
        try:
            delivery = await chat.send(NOTICE)
        finally:
            await chat.aclose()
    assert not delivery.ok and delivery.error is not None
    assert delivery.error.startswith("apprise: failure")
    assert receiver.got  # it was really tried
    text = delivery.error + repr(delivery) + repr(chat)
    assert "hunter2" not in text and "admin" not in text
    assert repr(chat) == "<AppriseChannel chat json://…>"


def test_an_unknown_url_is_refused_without_showing_it() -> None:
    with pytest.raises(PlanError, match="not a URL Apprise can use") as raised:
        AppriseChannel(
            "chat", "nosuchservice://user:hunter2hunter2@host/x", wiring(Clock(), Pauses())
        )
    assert str(raised.value) == (
        "notify.channels.chat.url: not a URL Apprise can use (nosuchservice://…)"
    )
