"""A signed generic webhook: the notice POSTed as JSON to the plan's URL.

The body is the notice's fields (:meth:`Notice.fields`)::

    {"incident_id": "inc-42", "event": "opened", "title": "…", "body": "…",
     "severity": "critical", "component": "Chat assistant", "status": "investigating",
     "at": 1767225600.0, "link": "https://status.example.com/incidents/inc-42"}

with these headers::

    X-Standby-Event: opened
    X-Standby-Delivery: 5f0c…          the same on every retry of one message: dedupe on it
    X-Standby-Timestamp: 1767225601    unix seconds when this try was signed
    X-Standby-Signature: sha256=9a3e…  lowercase hex HMAC-SHA256, keyed with the channel's
                                       secret, of f"{timestamp}.".encode() + raw body

A receiver recomputes the HMAC over the raw bytes it received (not re-serialised JSON),
compares in constant time and refuses a timestamp too far from its own clock (a replay):
:func:`verify` does all of it. A channel with no ``secret`` sends no signature header.
Retried on connection failures, timeouts, 5xx and 429 (see :class:`Retry`): delivery is
at least once, hence the delivery id.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from collections.abc import Mapping

import orjson

from standby.notify.delivery import Delivery, Wiring
from standby.notify.http import Poster
from standby.notify.message import Notice
from standby.notify.redact import Redactor, origin, url_secrets
from standby.plan.alerts import Channel as ChannelConfig

log = logging.getLogger("standby.notify")

USER_AGENT = "Standby-Notify/1"
SCHEME = "sha256="


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Standby-Signature`` value of ``body`` signed at ``timestamp``."""
    message = f"{timestamp}.".encode() + body
    return SCHEME + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    timestamp: str | int,
    body: bytes,
    signature: str,
    now: float,
    tolerance: float = 300.0,
) -> bool:
    """Whether ``signature`` (the ``X-Standby-Signature`` header) signs ``body`` (the raw
    bytes received) at ``timestamp`` (the ``X-Standby-Timestamp`` header), and that
    timestamp is within ``tolerance`` seconds of ``now`` (unix time)."""
    if not secret or not signature.startswith(SCHEME):
        return False
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs(now - stamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature)


class WebhookChannel:
    """POSTs each notice, signed, to one URL."""

    __slots__ = ("_clock", "_origin", "_poster", "_secret", "name")

    def __init__(self, name: str, url: str, secret: str, wiring: Wiring) -> None:
        self.name = name
        self._secret = secret
        self._clock = wiring.clock
        redact = Redactor([secret, *url_secrets(url)])
        self._poster = Poster(name, url, wiring, redact)
        self._origin = origin(url)
        if not secret:
            log.warning("notify channel %s: webhook without a secret, sent unsigned", name)

    @classmethod
    def from_plan(cls, name: str, config: ChannelConfig, wiring: Wiring) -> WebhookChannel:
        return cls(name, config.url, config.secret, wiring)

    def __repr__(self) -> str:
        signed = "signed" if self._secret else "unsigned"
        return f"<WebhookChannel {self.name} {self._origin} {signed}>"

    async def send(self, notice: Notice) -> Delivery:
        body = orjson.dumps(notice.fields())
        delivery_id = uuid.uuid4().hex

        def headers() -> Mapping[str, str]:
            timestamp = int(self._clock())
            found = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-Standby-Event": notice.event,
                "X-Standby-Delivery": delivery_id,
                "X-Standby-Timestamp": str(timestamp),
            }
            if self._secret:
                found["X-Standby-Signature"] = sign(self._secret, timestamp, body)
            return found

        return await self._poster.post(body, headers)

    async def aclose(self) -> None:
        await self._poster.aclose()
