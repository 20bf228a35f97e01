"""Any service Apprise speaks (Slack, Teams, Discord, email, ntfy, Telegram, …), named by
one Apprise URL in the plan (``slack://…``, ``mailtos://…``, ``json://host/path``…).

Apprise's ``async_notify`` is used: its network plugins are blocking (``requests``), and
it runs them in its own worker threads, so the event loop is never blocked. Each send is
bounded by ``Wiring.timeout`` (Apprise's call deadline). Apprise reports no HTTP status,
only success or failure, so ``Delivery.status`` is ``None``. Standby does not retry an
Apprise channel itself: a service whose API is safe to repeat can be given Apprise's own
``?retry=N`` in its URL.

The URL holds the credentials (tokens in its path, a password): Standby names the channel
by the URL's scheme only, and masks every part of the URL in the errors it reports.
"""

from __future__ import annotations

import apprise
from apprise.common import NotifyFormat, NotifyType, PersistentStoreMode

from standby.errors import PlanError
from standby.notify.delivery import Delivery, Wiring
from standby.notify.message import Notice
from standby.notify.redact import Redactor, url_secrets
from standby.plan.alerts import Channel as ChannelConfig

ERROR_LIMIT = 300  # characters of Apprise's own explanation kept in Delivery.error

HEADINGS = {
    "opened": "Incident",
    "updated": "Update",
    "acknowledged": "Acknowledged",
    "resolved": "Resolved",
    "test": "Test",
}
TYPES = {
    "critical": NotifyType.FAILURE,
    "error": NotifyType.FAILURE,
    "warning": NotifyType.WARNING,
    "info": NotifyType.INFO,
}


def title(notice: Notice) -> str:
    """``Resolved: Chat assistant answers slowly``."""
    return f"{HEADINGS[notice.event]}: {notice.title}"


def text(notice: Notice) -> str:
    """The body, then the incident's status and component, and its link."""
    lines = [notice.body, "", f"Status: {notice.status} · {notice.component}"]
    if notice.link:
        lines.append(notice.link)
    return "\n".join(lines).strip()


class AppriseChannel:
    """Sends each notice through one Apprise URL."""

    __slots__ = ("_apprise", "_clock", "_redact", "_scheme", "_timeout", "name")

    def __init__(self, name: str, url: str, wiring: Wiring) -> None:
        self.name = name
        self._clock = wiring.clock
        self._timeout = wiring.timeout
        self._scheme = url.partition("://")[0] if "://" in url else "?"
        self._redact = Redactor(url_secrets(url))
        # persistent storage off: a notification leaves nothing on disk
        asset = apprise.AppriseAsset(storage_mode=PersistentStoreMode.MEMORY)
        self._apprise = apprise.Apprise(asset=asset)
        if not self._apprise.add(url):
            raise PlanError(
                f"not a URL Apprise can use ({self._scheme}://…)",
                key=f"notify.channels.{name}.url",
            )

    @classmethod
    def from_plan(cls, name: str, config: ChannelConfig, wiring: Wiring) -> AppriseChannel:
        return cls(name, config.url, wiring)

    def __repr__(self) -> str:
        return f"<AppriseChannel {self.name} {self._scheme}://…>"

    async def send(self, notice: Notice) -> Delivery:
        notify_type = NotifyType.SUCCESS if notice.event == "resolved" else TYPES[notice.severity]
        try:
            result = await self._apprise.async_notify(
                body=text(notice),
                title=title(notice),
                notify_type=notify_type,
                body_format=NotifyFormat.TEXT,
                timeout=self._timeout,
            )
        except Exception as exc:  # a plugin bug must not take the dispatcher down
            return Delivery(
                self.name, False, 1, None, f"apprise: {type(exc).__name__}", self._clock()
            )
        with result:
            services = list(result)
            attempts = max(1, sum(len(service) for service in services))
            if result:
                return Delivery(self.name, True, attempts, None, None, self._clock(), ("ok",))
            reasons = [entry.message for service in services for entry in service.logs()]
            reasons += [entry.message for entry in result.call_logs()]
            error = f"apprise: {result.status.name.lower()}"
            if reasons:
                error += ": " + self._redact(" ".join(str(r) for r in reasons))[:ERROR_LIMIT]
            trail = tuple(service.status.name.lower() for service in services)
        return Delivery(self.name, False, attempts, None, error, self._clock(), trail)

    async def aclose(self) -> None:
        """Nothing to close: Apprise opens a connection per message."""
