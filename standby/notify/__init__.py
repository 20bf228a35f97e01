"""Telling people about incidents: channels (Apprise, signed webhooks, PagerDuty), the
escalation policy (a pure state machine) and the dispatcher that runs it.

    incident events ─▶ Dispatcher.notify ─▶ Escalation (who, when, how often)
                       Dispatcher loop ─▶ Channel.send ─▶ Delivery ─▶ on_delivery (journal)
"""

from standby.notify.channels import (
    AppriseChannel,
    Channel,
    PagerDutyChannel,
    WebhookChannel,
    build,
    build_all,
)
from standby.notify.delivery import Delivery, Wiring
from standby.notify.dispatcher import Dispatcher
from standby.notify.escalation import Escalation
from standby.notify.message import Notice
from standby.notify.retry import Retry
from standby.notify.webhook import sign, verify

__all__ = [
    "AppriseChannel",
    "Channel",
    "Delivery",
    "Dispatcher",
    "Escalation",
    "Notice",
    "PagerDutyChannel",
    "Retry",
    "WebhookChannel",
    "Wiring",
    "build",
    "build_all",
    "sign",
    "verify",
]
