"""Subscriptions through a running gateway: a visitor's webhook subscribes on the page,
hears of an incident customers felt, signed, once per update, and nothing after leaving."""

from __future__ import annotations

import time

import aiohttp

from standby.notify.webhook import verify
from standby.sim import SimProvider
from standby.testing import running_gateway
from tests.conftest import two_target_plan
from tests.statuspage.subscription_doubles import hook


async def test_a_visitor_hears_of_an_incident_and_then_leaves(
    primary: SimProvider, backup: SimProvider
) -> None:
    plan = two_target_plan(
        primary,
        backup,
        status_page={
            "title": "Acme AI status",
            "components": {"Chat assistant": {"routes": ["gpt-*"]}},
            "subscriptions": {"allow_private_webhooks": True},  # the receiver is on loopback
        },
    )
    async with (
        hook() as receiver,
        running_gateway(plan) as gw,
        aiohttp.ClientSession() as session,
    ):
        alerting = gw.app.alerting
        async with session.get(f"{gw.root_url}/status") as resp:
            assert "Subscribe to updates" in await resp.text()
        async with session.post(
            f"{gw.root_url}/status/subscribe", json={"kind": "webhook", "url": receiver.url}
        ) as resp:
            assert resp.status == 201, await resp.text()
            receipt = await resp.json()
        assert receipt["state"] == "active" and len(receiver.challenges) == 1

        incident = await alerting.manager.open(
            "Chat assistant", "Answers are slow", message="We are looking into slow answers."
        )
        alerting.page.forget()
        await receiver.wait_for(lambda r: len(r.deliveries) == 1)
        [told] = receiver.deliveries
        headers = {k.lower(): v for k, v in told.headers.items()}
        assert verify(
            receipt["secret"],
            headers["x-standby-timestamp"],
            told.body,
            headers["x-standby-signature"],
            time.time(),
        )
        assert told.json["incident"]["name"] == "Answers are slow"
        assert told.json["incident"]["incident_updates"][0]["body"] == (
            "We are looking into slow answers."
        )

        # leaving: the link in the receipt; the resolution is not told
        async with session.post(receipt["unsubscribe_url"], json={}) as resp:
            assert resp.status == 200 and (await resp.json())["state"] == "unsubscribed"
        await alerting.manager.resolve(incident.id, "Answers are fast again.")
        alerting.page.forget()
        delivered = await alerting.subscriptions.deliver(await alerting.page_now())  # type: ignore[union-attr]
    assert delivered == 0 and len(receiver.deliveries) == 1
