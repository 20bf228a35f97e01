"""Keeping a channel's secrets out of everything Standby writes about it.

A routing key, a webhook secret, or an Apprise URL's credentials must never appear in a
log line, a :class:`~standby.notify.delivery.Delivery` error or a ``repr``. Channels name
their endpoint by :func:`origin` only, and pass any text that came from outside (an
error body, a library's log message) through a :class:`Redactor` built from the secrets
they hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
SHORTEST = 4  # shorter fragments (a port, "v2") would mask half of every message
TOKEN = 8  # a path segment or query value this long may be a token (Slack, Discord…)


class Redactor:
    """Replaces every occurrence of the given secrets in a text with ``***``."""

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str]) -> None:
        # longest first, so a secret containing another is masked whole
        found = {s for s in secrets if len(s) >= SHORTEST}
        self._secrets = tuple(sorted(found, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def __repr__(self) -> str:
        return f"<Redactor secrets={len(self._secrets)}>"


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that may be credentials: the whole URL, its user and
    password, and every path segment and query value long enough to be a token (many
    services, Slack and Discord among them, carry theirs in the path)."""
    found = [url]
    try:
        parts = urlsplit(url)
    except ValueError:
        return found
    for raw in (parts.username, parts.password):
        if raw:
            found += [raw, unquote(raw)]
    if "@" in parts.netloc:
        found.append(parts.netloc.rpartition("@")[0])
    found += [segment for segment in parts.path.split("/") if len(segment) >= TOKEN]
    found += [value for _, value in parse_qsl(parts.query) if len(value) >= TOKEN]
    return found


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: enough to say where, nothing secret."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
