"""What a subscriber of the status page receives: Statuspage's incident webhook body, and
the two mails (the confirmation, an update).  Pure: the page view in, words and JSON out,
in the customers' words the page shows (no provider, model or target names)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from standby.statuspage.api import incident_json
from standby.statuspage.model import PageView, PublicIncident, Update, iso


def webhook_body(
    view: PageView, incident: PublicIncident, update: Update, unsubscribe: str, at: float
) -> dict[str, Any]:
    """Statuspage's incident webhook: ``meta``, ``page`` and the ``incident`` as it is
    now, with its ``incident_updates`` (newest first) cut at the one told, which is
    therefore the first."""
    index = next(n for n, u in enumerate(incident.updates) if u.id == update.id)
    told = replace(incident, updates=incident.updates[index:])
    return {
        "meta": {
            "unsubscribe": unsubscribe,
            "documentation": f"{view.url.rstrip('/')}/status",
            "generated_at": iso(at),
        },
        "page": {
            "id": view.id,
            "status_indicator": view.indicator,
            "status_description": view.description,
        },
        "incident": incident_json(view, told),
    }


def delivery_id(subscriber_id: str, update_id: str) -> str:
    """The same on every try of one update to one subscriber, and after a restart."""
    return hashlib.sha256(f"{subscriber_id}\x00{update_id}".encode()).hexdigest()[:32]


def one_line(text: str) -> str:
    """A mail subject: whitespace (line breaks too) folded to single spaces."""
    return " ".join(text.split())


def update_mail(
    view: PageView, incident: PublicIncident, update: Update, link: str, unsubscribe: str
) -> tuple[str, str]:
    """(subject, text) of the mail telling one update."""
    status = update.status.capitalize()
    text = "\n".join(
        [
            f"{status}: {update.body}",
            "",
            f"Incident: {incident.name}",
            f"Affects: {', '.join(incident.components)}",
            f"Posted: {iso(update.at)}",
            link,
            "",
            f"You receive this because you subscribed to {view.name}.",
            f"Unsubscribe: {unsubscribe}",
        ]
    )
    return one_line(f"[{view.name}] {incident.name}: {status}"), text


def confirmation_mail(
    view: PageView, components: tuple[str, ...] | None, confirm: str
) -> tuple[str, str]:
    """(subject, text) of the mail asking to confirm a subscription."""
    what = f" about {', '.join(components)}" if components else ""
    text = "\n".join(
        [
            f"Someone, hopefully you, asked to receive the incident updates of "
            f"{view.name}{what} at this address.",
            "",
            "To confirm, follow this link:",
            confirm,
            "",
            "If it was not you, ignore this mail: nothing more is sent without a confirmation.",
        ]
    )
    return one_line(f"Confirm your subscription to {view.name}"), text
