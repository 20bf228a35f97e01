"""PagerDuty, through its Events API v2 (``POST https://events.pagerduty.com/v2/enqueue``).

One PagerDuty alert per incident: every event of an incident carries the same
``dedup_key`` (``standby-<incident id>``), so

    opened, updated  → ``trigger``     (the first opens the alert; later ones add to its log)
    acknowledged     → ``acknowledge``
    resolved         → ``resolve``
    test             → ``trigger`` then, once accepted, ``resolve`` (seen, never left open)

A trigger carries ``payload.summary`` (the title, cut to PagerDuty's 1024 characters),
``source``, ``severity`` (the notice's, already PagerDuty's vocabulary), ``timestamp``,
``component`` and ``custom_details`` (status, body, link), plus ``client`` and, when the
notice has a link, ``client_url`` and ``links``. Acknowledge and resolve events need only
the routing key, the action and the ``dedup_key``.

PagerDuty answers 202 when it accepted an event (it is processed asynchronously), 400
when the event is invalid (never retried), 429 when throttled and 5xx on its own errors
(both retried with backoff, as its documentation asks). The routing key travels in the
body only, and is masked in every error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from standby.notify.delivery import Delivery, Wiring
from standby.notify.http import Poster
from standby.notify.message import Notice, NoticeEvent
from standby.notify.redact import Redactor, origin
from standby.plan.alerts import Channel as ChannelConfig

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_LIMIT = 1024  # PagerDuty's limit on payload.summary
DEDUP_LIMIT = 255  # … and on dedup_key
USER_AGENT = "Standby-Notify/1"

Action = Literal["trigger", "acknowledge", "resolve"]
ACTIONS: Mapping[NoticeEvent, Action] = {
    "opened": "trigger",
    "updated": "trigger",
    "test": "trigger",
    "acknowledged": "acknowledge",
    "resolved": "resolve",
}


def dedup_key(incident_id: str) -> str:
    """The one PagerDuty alert of an incident (hashed if the id is too long)."""
    key = f"standby-{incident_id}"
    if len(key) > DEDUP_LIMIT:
        key = "standby-" + hashlib.sha256(incident_id.encode()).hexdigest()
    return key


def event(notice: Notice, routing_key: str, source: str = "standby") -> dict[str, Any]:
    """The Events API v2 body for ``notice``."""
    action = ACTIONS[notice.event]
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key(notice.incident_id),
    }
    if action != "trigger":
        return body
    summary = notice.title or f"{notice.component}: {notice.status}"
    if len(summary) > SUMMARY_LIMIT:
        summary = summary[: SUMMARY_LIMIT - 1] + "…"
    body["payload"] = {
        "summary": summary,
        "source": source,
        "severity": notice.severity,
        "timestamp": datetime.fromtimestamp(notice.at, UTC).isoformat(),
        "component": notice.component,
        "custom_details": {
            "incident": notice.incident_id,
            "event": notice.event,
            "status": notice.status,
            "details": notice.body,
            **({"link": notice.link} if notice.link else {}),
        },
    }
    body["client"] = "Standby"
    if notice.link:
        body["client_url"] = notice.link
        body["links"] = [{"href": notice.link, "text": "Incident on the status page"}]
    return body


class PagerDutyChannel:
    """Sends each notice as an Events API v2 event to one integration (routing key)."""

    __slots__ = ("_origin", "_poster", "_routing_key", "_source", "name")

    def __init__(
        self,
        name: str,
        routing_key: str,
        wiring: Wiring,
        *,
        url: str = EVENTS_URL,
        source: str = "standby",
    ) -> None:
        self.name = name
        self._routing_key = routing_key
        self._source = source
        self._origin = origin(url)
        self._poster = Poster(name, url, wiring, Redactor([routing_key]))

    @classmethod
    def from_plan(cls, name: str, config: ChannelConfig, wiring: Wiring) -> PagerDutyChannel:
        return cls(name, config.routing_key, wiring, url=config.url or EVENTS_URL)

    def __repr__(self) -> str:
        return f"<PagerDutyChannel {self.name} {self._origin}>"

    async def send(self, notice: Notice) -> Delivery:
        first = await self._post(notice)
        if notice.event != "test" or not first.ok:
            return first
        second = await self._post(replace(notice, event="resolved"))
        return replace(
            second,
            attempts=first.attempts + second.attempts,
            trail=first.trail + second.trail,
        )

    async def _post(self, notice: Notice) -> Delivery:
        body = orjson.dumps(event(notice, self._routing_key, self._source))
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        return await self._poster.post(body, lambda: headers)

    async def aclose(self) -> None:
        await self._poster.aclose()
