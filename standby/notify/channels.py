"""Where notices go: the :class:`Channel` protocol, and the channel kinds a plan can name.

    notify:
      channels:
        ops-chat: {kind: apprise, url: "slack://…"}               standby.notify.apprise
        hooks: {kind: webhook, url: "https://…", secret: "…"}      standby.notify.webhook
        oncall: {kind: pagerduty, routing_key: "…"}                standby.notify.pagerduty

A new kind is one module with a class that has ``name``, ``send`` and ``aclose`` and a
``from_plan(name, config, wiring)`` constructor, plus one line in :data:`KINDS` (and the
kind in ``standby.plan.alerts.Channel.kind``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Protocol

from standby.notify.apprise import AppriseChannel
from standby.notify.delivery import Delivery, Wiring
from standby.notify.message import Notice
from standby.notify.pagerduty import PagerDutyChannel
from standby.notify.webhook import WebhookChannel, verify
from standby.plan.alerts import Channel as ChannelConfig
from standby.plan.alerts import Notify

__all__ = [
    "KINDS",
    "AppriseChannel",
    "Channel",
    "Delivery",
    "PagerDutyChannel",
    "WebhookChannel",
    "build",
    "build_all",
    "verify",
]


class Channel(Protocol):
    """One destination of notices. ``send`` never raises for a failed delivery: it
    returns a :class:`Delivery` saying what happened, secrets masked."""

    @property
    def name(self) -> str: ...

    async def send(self, notice: Notice) -> Delivery: ...

    async def aclose(self) -> None: ...


Builder = Callable[[str, ChannelConfig, Wiring], Channel]

KINDS: Mapping[str, Builder] = MappingProxyType(
    {
        "apprise": AppriseChannel.from_plan,
        "pagerduty": PagerDutyChannel.from_plan,
        "webhook": WebhookChannel.from_plan,
    }
)


def build(name: str, config: ChannelConfig, wiring: Wiring | None = None) -> Channel:
    """The channel a plan's ``notify.channels.NAME`` record describes.

    Raises :class:`~standby.errors.PlanError` (naming the key, never a secret) when the
    record cannot make a channel, e.g. an Apprise URL Apprise does not know.
    """
    return KINDS[config.kind](name, config, wiring or Wiring())


def build_all(notify: Notify, wiring: Wiring | None = None) -> dict[str, Channel]:
    """Every channel of the plan's ``notify`` section, by name."""
    wiring = wiring or Wiring()
    return {name: build(name, config, wiring) for name, config in notify.channels.items()}
