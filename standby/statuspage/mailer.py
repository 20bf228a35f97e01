"""Mail to one subscriber of the status page, through the plan's email channel (an Apprise
``mailto://`` or ``mailtos://`` URL) with the subscriber as its only recipient.

The channel's own recipients (in its path, or ``to``/``cc``/``bcc``) are dropped, so an
operator's address never receives a visitor's mail, and no visitor sees another.  Extra
headers travel as Apprise's ``+Name=value`` arguments (``List-Unsubscribe``).  Apprise
runs its blocking SMTP client in its own worker threads; each mail is bounded by
``timeout``.  The URL holds the SMTP password: errors are redacted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import apprise
from apprise.common import NotifyFormat, NotifyType, PersistentStoreMode

from standby.notify.delivery import Delivery
from standby.notify.redact import Redactor, url_secrets

ERROR_LIMIT = 300  # characters of Apprise's explanation kept


def mail_url(channel_url: str, to: str, headers: Mapping[str, str] | None = None) -> str:
    """``channel_url`` with ``to`` as its only recipient, and ``headers`` added."""
    parts = urlsplit(channel_url)
    kept = [
        piece
        for piece in parts.query.split("&")
        if piece and unquote(piece.partition("=")[0]).lower() not in ("to", "cc", "bcc")
    ]
    kept.append("to=" + quote(to, safe=""))
    kept += [
        f"+{quote(name, safe='')}={quote(value, safe='')}"
        for name, value in (headers or {}).items()
    ]
    return urlunsplit((parts.scheme, parts.netloc, "", "&".join(kept), ""))


class Mailer:
    """Sends plain-text mails through one Apprise email URL."""

    __slots__ = ("_clock", "_redact", "_scheme", "_timeout", "_url")

    def __init__(self, url: str, *, clock: Callable[[], float], timeout: float) -> None:
        self._url = url
        self._clock = clock
        self._timeout = timeout
        self._redact = Redactor(url_secrets(url))
        self._scheme = url.partition("://")[0] if "://" in url else "?"

    def __repr__(self) -> str:
        return f"<Mailer {self._scheme}://…>"

    async def send(
        self, to: str, subject: str, text: str, headers: Mapping[str, str] | None = None
    ) -> Delivery:
        """One mail to ``to`` alone; never raises for a mail that did not go."""
        sender = apprise.Apprise(
            asset=apprise.AppriseAsset(storage_mode=PersistentStoreMode.MEMORY)
        )
        if not sender.add(mail_url(self._url, to, headers)):
            return self._failed(0, f"not a URL Apprise can use ({self._scheme}://…)")
        try:
            result = await sender.async_notify(
                body=text,
                title=subject,
                notify_type=NotifyType.INFO,
                body_format=NotifyFormat.TEXT,
                timeout=self._timeout,
            )
        except Exception as exc:  # a plugin's bug is one failed mail
            return self._failed(1, f"apprise: {type(exc).__name__}")
        with result:
            if result:
                return Delivery("email", True, 1, None, None, self._clock())
            reasons = [entry.message for service in result for entry in service.logs()]
            reasons += [entry.message for entry in result.call_logs()]
            error = "apprise: " + result.status.name.lower()
            if reasons:
                error += ": " + self._redact(" ".join(str(r) for r in reasons))[:ERROR_LIMIT]
        return self._failed(1, error)

    def _failed(self, attempts: int, error: str) -> Delivery:
        return Delivery("email", False, attempts, None, error, self._clock())
