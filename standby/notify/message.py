"""What a notification says: one :class:`Notice` about one incident, the same for every
channel (each channel renders it its own way)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NoticeEvent = Literal["opened", "updated", "acknowledged", "resolved", "test"]
Severity = Literal["critical", "error", "warning", "info"]  # PagerDuty's four, in order


@dataclass(frozen=True, slots=True)
class Notice:
    """One message about one incident.

    ``at`` is when the incident's state described here began, in unix seconds (wall
    clock, rendered as a date by the channels). ``status`` is the incident's status in
    the status page's vocabulary (``investigating``, ``identified``, ``monitoring``,
    ``resolved``…); ``link`` points to the incident on the status page, if there is one.
    """

    incident_id: str
    event: NoticeEvent
    title: str
    body: str
    severity: Severity
    component: str
    status: str
    at: float
    link: str = ""

    def fields(self) -> dict[str, str | float]:
        """The notice as a flat JSON-ready dict (the webhook body)."""
        return {
            "incident_id": self.incident_id,
            "event": self.event,
            "title": self.title,
            "body": self.body,
            "severity": self.severity,
            "component": self.component,
            "status": self.status,
            "at": self.at,
            "link": self.link,
        }
