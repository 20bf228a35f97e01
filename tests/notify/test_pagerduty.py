"""PagerDuty Events API v2: the event bodies, and a PagerDuty-shaped receiver on loopback
getting trigger then resolve under one dedup_key."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest

from standby.notify.channels import build
from standby.notify.message import Notice
from standby.notify.pagerduty import EVENTS_URL, PagerDutyChannel, dedup_key, event
from standby.plan.alerts import Channel as ChannelConfig
from tests.notify.receivers import START, Answer, Clock, Pauses, Receiver, serving, wiring

KEY = "R0UT1NGKEY0123456789abcdefABCDEF"  # 32 characters, like a real integration key
NOTICE = Notice(
    incident_id="inc-7",
    event="opened",
    title="Chat assistant: OpenAI down, answering from Anthropic",
    body="Every request to OpenAI fails with 503 since 10:02.",
    severity="critical",
    component="Chat assistant",
    status="investigating",
    at=START,
    link="https://status.example.com/incidents/inc-7",
)
ACCEPTED = Answer(
    202, body=orjson.dumps({"status": "success", "message": "Event processed", "dedup_key": "x"})
)


def pagerduty(url: str, clock: Clock, pauses: Pauses) -> PagerDutyChannel:
    config = ChannelConfig(kind="pagerduty", routing_key=KEY, url=url)
    built = build("oncall", config, wiring(clock, pauses))
    assert isinstance(built, PagerDutyChannel)
    return built


def test_a_trigger_carries_the_payload() -> None:
    assert event(NOTICE, KEY) == {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": "standby-inc-7",
        "payload": {
            "summary": NOTICE.title,
            "source": "standby",
            "severity": "critical",
            "timestamp": "2026-01-01T00:00:00+00:00",
            "component": "Chat assistant",
            "custom_details": {
                "incident": "inc-7",
                "event": "opened",
                "status": "investigating",
                "details": NOTICE.body,
                "link": NOTICE.link,
            },
        },
        "client": "Standby",
        "client_url": NOTICE.link,
        "links": [{"href": NOTICE.link, "text": "Incident on the status page"}],
    }


@pytest.mark.parametrize(
    ("kind", "action"),
    [
        ("opened", "trigger"),
        ("updated", "trigger"),
        ("test", "trigger"),
        ("acknowledged", "acknowledge"),
        ("resolved", "resolve"),
    ],
)
def test_events_map_to_actions(kind: Any, action: str) -> None:
    body = event(replace(NOTICE, event=kind), KEY)
    assert body["event_action"] == action
    assert body["dedup_key"] == "standby-inc-7"
    assert ("payload" in body) is (action == "trigger")


def test_limits_are_kept() -> None:
    long = replace(NOTICE, title="x" * 5000, incident_id="i" * 300, link="")
    body = event(long, KEY)
    assert len(body["payload"]["summary"]) == 1024
    assert len(body["dedup_key"]) <= 255
    assert body["dedup_key"] == dedup_key("i" * 300) != dedup_key("i" * 301)
    assert "links" not in body and "client_url" not in body


def test_the_default_endpoint() -> None:
    config = ChannelConfig(kind="pagerduty", routing_key=KEY)
    channel = build("oncall", config)
    assert repr(channel) == "<PagerDutyChannel oncall https://events.pagerduty.com>"
    assert EVENTS_URL == "https://events.pagerduty.com/v2/enqueue"


async def test_trigger_then_resolve_share_one_dedup_key() -> None:
    clock, pauses = Clock(), Pauses()
    async with serving(Receiver(default=ACCEPTED), path="/v2/enqueue") as receiver:
        oncall = pagerduty(receiver.url, clock, pauses)
        try:
            opened = await oncall.send(NOTICE)
            resolved = await oncall.send(replace(NOTICE, event="resolved", status="resolved"))
        finally:
            await oncall.aclose()
    assert opened.ok and resolved.ok and opened.status == 202
    trigger, resolve = (got.json() for got in receiver.got)
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == "standby-inc-7"
    assert trigger["routing_key"] == resolve["routing_key"] == KEY
    assert trigger["payload"]["severity"] == "critical"
    assert receiver.got[0].headers["Content-Type"] == "application/json"


async def test_a_test_notice_is_triggered_then_resolved() -> None:
    clock, pauses = Clock(), Pauses()
    async with serving(Receiver(default=ACCEPTED), path="/v2/enqueue") as receiver:
        oncall = pagerduty(receiver.url, clock, pauses)
        try:
            delivery = await oncall.send(replace(NOTICE, event="test", severity="info"))
        finally:
            await oncall.aclose()
    assert delivery.ok and delivery.attempts == 2 and delivery.trail == ("HTTP 202", "HTTP 202")
    actions = [got.json()["event_action"] for got in receiver.got]
    assert actions == ["trigger", "resolve"]


async def test_throttled_and_5xx_are_retried_400_is_not() -> None:
    clock, pauses = Clock(), Pauses()
    answers = [Answer(429), Answer(502), ACCEPTED]
    async with serving(Receiver(*answers), path="/v2/enqueue") as receiver:
        oncall = pagerduty(receiver.url, clock, pauses)
        try:
            retried = await oncall.send(NOTICE)
        finally:
            await oncall.aclose()
    assert retried.ok and retried.trail == ("HTTP 429", "HTTP 502", "HTTP 202")

    # PagerDuty's own 400 answer, naming (here: echoing) the routing key
    invalid = Answer(
        400,
        body=orjson.dumps(
            {
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": [f"routing_key {KEY} is not known"],
            }
        ),
    )
    async with serving(Receiver(default=invalid), path="/v2/enqueue") as receiver:
        oncall = pagerduty(receiver.url, clock, pauses)
        try:
            refused = await oncall.send(NOTICE)
        finally:
            await oncall.aclose()
    assert not refused.ok and refused.attempts == 1 and refused.status == 400
    assert refused.error is not None and "Event object is invalid" in refused.error
    assert KEY not in refused.error and "routing_key *** is not known" in refused.error
    assert KEY not in repr(oncall)
