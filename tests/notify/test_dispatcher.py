"""The dispatcher end to end: a plan's escalation over real channels (a signed webhook,
PagerDuty and Apprise), each reaching a real receiver on loopback, on a hand-moved
clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from standby.notify.channels import Channel, build_all
from standby.notify.delivery import Delivery
from standby.notify.dispatcher import Dispatcher
from standby.notify.message import Notice
from standby.notify.webhook import verify
from standby.plan.alerts import Notify
from tests.notify.receivers import START, WAIT, Answer, Clock, Pauses, Receiver, serving, wiring

SECRET = "whsec_dispatch_secret"
KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
OPENED = Notice(
    incident_id="inc-1",
    event="opened",
    title="Chat assistant: OpenAI is down",
    body="Requests fail over to Anthropic.",
    severity="critical",
    component="Chat assistant",
    status="investigating",
    at=START,
)
UPDATED = replace(OPENED, event="updated", status="identified", body="OpenAI confirmed it.")
RESOLVED = replace(OPENED, event="resolved", status="resolved", body="OpenAI is back.")
ACCEPTED = Answer(202, body=b'{"status":"success","message":"Event processed"}')


@dataclass
class Rig:
    """Three receivers, the dispatcher over them, and what it reported."""

    clock: Clock
    hooks: Receiver
    oncall: Receiver
    chat: Receiver
    dispatcher: Dispatcher
    reported: list[tuple[str, Notice, Delivery]] = field(default_factory=list)

    def events(self, channel: str) -> list[str]:
        return [notice.event for _, notice, d in self.reported if d.channel == channel]


def plan(hooks: str, oncall: str, chat: str, **chat_fields: Any) -> Notify:
    return Notify.model_validate(
        {
            "channels": {
                "hooks": {"kind": "webhook", "url": hooks, "secret": SECRET},
                "oncall": {"kind": "pagerduty", "url": oncall, "routing_key": KEY},
                "chat": {"kind": "apprise", "url": chat.replace("http", "json"), **chat_fields},
            },
            "escalation": [
                {"after": "0s", "notify": ["chat", "hooks"]},
                {"after": "10m", "notify": ["oncall"]},
            ],
        }
    )


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = Clock()
    hooks, oncall, chat = Receiver(clock=clock), Receiver(default=ACCEPTED), Receiver()
    async with (
        serving(hooks) as hooks,
        serving(oncall, path="/v2/enqueue") as oncall,
        serving(chat, path="/chat") as chat,
    ):
        notify = plan(hooks.url, oncall.url, chat.url)
        channels = build_all(notify, wiring(clock, Pauses()))
        reported: list[tuple[str, Notice, Delivery]] = []
        dispatcher = Dispatcher(notify, channels, clock, lambda i, n, d: reported.append((i, n, d)))
        dispatcher.start()
        try:
            yield Rig(clock, hooks, oncall, chat, dispatcher, reported)
        finally:
            await dispatcher.stop()


async def idle(rig: Rig) -> None:
    async with asyncio.timeout(WAIT):
        await rig.dispatcher.idle()


async def test_an_outage_escalates_and_its_resolution_reaches_everyone(rig: Rig) -> None:
    rig.dispatcher.notify("opened", OPENED)
    await rig.hooks.wait_for(1)
    await rig.chat.wait_for(1)
    await idle(rig)
    assert rig.oncall.got == []  # not before ten minutes

    rig.clock.now += 600
    rig.dispatcher.wake()
    [trigger] = await rig.oncall.wait_for(1)

    rig.dispatcher.notify("resolved", RESOLVED)
    await idle(rig)
    hook_opened, hook_resolved = await rig.hooks.wait_for(2)
    _, resolve = await rig.oncall.wait_for(2)
    _, chat_resolved = await rig.chat.wait_for(2)

    # the webhook receiver checks every signature against its clock when it arrived
    assert hook_resolved.at - hook_opened.at == 600
    for got in (hook_opened, hook_resolved):
        stamp, signature = got.headers["X-Standby-Timestamp"], got.headers["X-Standby-Signature"]
        assert verify(SECRET, stamp, got.body, signature, got.at)
        assert not verify(SECRET, stamp, got.body, signature, got.at + 301)
    assert [hook_opened.json()["event"], hook_resolved.json()["event"]] == ["opened", "resolved"]
    assert hook_resolved.json()["status"] == "resolved"
    # PagerDuty: one alert, triggered then resolved
    assert trigger.json()["event_action"] == "trigger"
    assert resolve.json()["event_action"] == "resolve"
    assert trigger.json()["dedup_key"] == resolve.json()["dedup_key"] == "standby-inc-1"
    assert chat_resolved.json()["title"] == "Resolved: Chat assistant: OpenAI is down"
    # every delivery was reported, in each thread's order
    assert all(d.ok for _, _, d in rig.reported) and len(rig.reported) == 6
    assert {incident for incident, _, _ in rig.reported} == {"inc-1"}
    for channel in ("hooks", "oncall", "chat"):
        assert rig.events(channel) == ["opened", "resolved"]


async def test_a_blip_never_pages(rig: Rig) -> None:
    rig.dispatcher.notify("opened", OPENED)
    await rig.dispatcher.settled()
    rig.clock.now += 30
    rig.dispatcher.notify("resolved", RESOLVED)
    await idle(rig)
    rig.clock.now += 600
    rig.dispatcher.wake()
    await idle(rig)
    assert rig.oncall.got == []
    assert rig.events("hooks") == rig.events("chat") == ["opened", "resolved"]


async def test_an_acknowledgement_stops_the_page(rig: Rig) -> None:
    rig.dispatcher.notify("opened", OPENED)
    await rig.dispatcher.settled()
    rig.clock.now += 60
    rig.dispatcher.notify("acknowledged", replace(OPENED, event="acknowledged"))
    await idle(rig)
    rig.clock.now += 600
    rig.dispatcher.wake()
    await idle(rig)
    assert rig.oncall.got == []
    assert rig.events("hooks") == ["opened", "acknowledged"]


async def test_maintenance_sends_nothing(rig: Rig) -> None:
    rig.dispatcher.notify("opened", OPENED)
    rig.dispatcher.mute("inc-1")
    await idle(rig)
    rig.clock.now += 600
    rig.dispatcher.notify("resolved", RESOLVED)
    await idle(rig)
    assert rig.hooks.got == rig.oncall.got == rig.chat.got == [] == rig.reported


async def test_a_thread_stays_in_order_while_other_channels_go_on(rig: Rig) -> None:
    rig.hooks.hold = asyncio.Event()  # the webhook receiver answers nothing for now
    rig.hooks.answers = [Answer(503)]  # … and then its first answer fails: a retry
    rig.dispatcher.notify("opened", OPENED)
    await rig.dispatcher.settled()
    await rig.hooks.wait_for(1)
    rig.clock.now += 1
    rig.dispatcher.notify("updated", UPDATED)
    await rig.dispatcher.settled()
    rig.clock.now += 1
    rig.dispatcher.notify("resolved", RESOLVED)
    await rig.dispatcher.settled()
    # chat got its whole thread while the webhook was stuck on its first message
    await rig.chat.wait_for(3)
    assert len(rig.hooks.got) == 1
    rig.hooks.hold.set()
    await idle(rig)
    events = [got.json()["event"] for got in rig.hooks.got]
    assert events == ["opened", "opened", "updated", "resolved"]  # a retry, then in order
    assert rig.hooks.most_in_flight == 1
    assert rig.events("hooks") == ["opened", "updated", "resolved"]
    [first] = [d for _, n, d in rig.reported if d.channel == "hooks" and n.event == "opened"]
    assert first.ok and first.trail == ("HTTP 503", "HTTP 200")


async def test_failures_are_reported_too(rig: Rig) -> None:
    rig.hooks.default = Answer(400)
    rig.dispatcher.notify("opened", OPENED)
    await idle(rig)
    [(incident, notice, delivery)] = [r for r in rig.reported if r[2].channel == "hooks"]
    assert incident == "inc-1" and notice.event == "opened"
    assert not delivery.ok and delivery.status == 400 and delivery.attempts == 1


async def test_send_test_reaches_each_channel(rig: Rig) -> None:
    for name in ("hooks", "oncall", "chat"):
        delivery = await rig.dispatcher.send_test(name)
        assert delivery.ok, delivery
        assert delivery.channel == name
    assert rig.hooks.got[0].json()["event"] == "test"
    assert [got.json()["event_action"] for got in rig.oncall.got] == ["trigger", "resolve"]
    assert rig.chat.got[0].json()["title"] == "Test: Standby test notification"
    assert rig.reported == []
    with pytest.raises(ValueError, match="no notify channel 'nope'"):
        await rig.dispatcher.send_test("nope")


async def test_a_broken_journal_callback_does_not_stop_notifications() -> None:
    clock = Clock()

    def explode(incident: str, notice: Notice, delivery: Delivery) -> None:
        raise RuntimeError("journal is down")

    async with serving(Receiver()) as hooks:
        notify = Notify.model_validate(
            {
                "channels": {"hooks": {"kind": "webhook", "url": hooks.url, "secret": SECRET}},
                "escalation": [{"notify": ["hooks"]}],
            }
        )
        channels = build_all(notify, wiring(clock, Pauses()))
        dispatcher = Dispatcher(notify, channels, clock, explode)
        dispatcher.start()
        try:
            dispatcher.notify("opened", OPENED)
            await hooks.wait_for(1)
            dispatcher.notify("resolved", RESOLVED)
            await hooks.wait_for(2)
        finally:
            await dispatcher.stop()


def test_every_channel_of_the_escalation_must_be_built() -> None:
    notify = plan("http://127.0.0.1:9/h", "http://127.0.0.1:9/p", "http://127.0.0.1:9/c")
    channels: dict[str, Channel] = {}
    with pytest.raises(ValueError, match="chat, hooks, oncall"):
        Dispatcher(notify, channels, Clock(), lambda i, n, d: None)


def test_a_test_notice_does_not_escalate() -> None:
    notify = Notify.model_validate({})
    dispatcher = Dispatcher(notify, {}, Clock(), lambda i, n, d: None)
    with pytest.raises(ValueError, match="send_test"):
        dispatcher.notify("test", replace(OPENED, event="test"))
