"""Signed callbacks: how a deferred completion is POSTed to the caller's URL.

Every callback is a JSON ``POST`` with two headers::

    Standby-Event: completion.deferred.completed      (or completion.deferred.failed)
    Standby-Signature: t=1718000000,v1=5257a869e7ecebed…

``t`` is the unix time of signing and ``v1`` the lowercase hex HMAC-SHA256 of
``f"{t}.{body}"`` (the timestamp, a dot, then the exact body bytes) keyed with the plan's
``journal.callback_secret``.  A receiver recomputes the HMAC over the raw body it
received, compares in constant time, and refuses a ``t`` too far from its own clock (a
replay): :func:`verify_signature` does all three.  Several ``v1=`` entries may appear
while a secret is being rotated; one match is enough.  Without a secret the callback is
sent unsigned (and a warning logged), so receivers that verify will refuse it.

Delivery is bounded: each try times out after ``timeout`` seconds, a failed try (network
error or non-2xx) is repeated up to ``tries`` times with doubling pauses, and then given
up with a log line.  Delivery is at most once per completion: the answer is journaled
before it is sent, so a gateway killed mid-delivery does not resend it after restart
(the answer stays retrievable as a stored completion).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Callable

import aiohttp
from yarl import URL

log = logging.getLogger("standby.deferred")

COMPLETED_EVENT = "completion.deferred.completed"
FAILED_EVENT = "completion.deferred.failed"
SessionFactory = Callable[[], aiohttp.ClientSession]


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Standby-Signature`` header value for ``body`` signed at ``timestamp``."""
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


def verify_signature(
    secret: str, header: str, body: bytes | str, now: float, tolerance: float = 300.0
) -> bool:
    """Whether ``header`` is a valid ``Standby-Signature`` of ``body`` within ``tolerance``.

    ``body`` must be the raw request body as received (not re-serialised JSON).
    """
    if not secret:
        return False
    raw = body.encode() if isinstance(body, str) else body
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance:
        return False
    expected = _digest(secret, raw, timestamp)
    # check every candidate so the time taken does not tell which one matched
    matched = [hmac.compare_digest(expected, c) for c in candidates]
    return any(matched)


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def default_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()


class CallbackSender:
    """POSTs signed callbacks in background tasks, so a slow receiver never blocks."""

    def __init__(
        self,
        secret: str,
        *,
        session_factory: SessionFactory = default_session,
        clock: Callable[[], float],
        timeout: float = 10.0,
        tries: int = 3,
        pause: float = 1.0,
    ) -> None:
        self.secret = secret
        self.session_factory = session_factory
        self.clock = clock
        self.timeout = timeout
        self.tries = tries
        self.pause = pause
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[bool]] = set()
        if not secret:
            log.warning("journal.callback_secret is not set: deferred callbacks go unsigned")

    def __repr__(self) -> str:
        return f"<CallbackSender pending={len(self._tasks)} tries={self.tries}>"

    def send(self, url: str, event: str, body: bytes) -> asyncio.Task[bool]:
        """Start delivering ``body`` to ``url`` in the background; the task says if it did."""
        task = asyncio.create_task(self.deliver(url, event, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def deliver(self, url: str, event: str, body: bytes) -> bool:
        """Try up to ``tries`` times; True once the receiver answered 2xx."""
        if self._session is None or self._session.closed:
            self._session = self.session_factory()
        for attempt in range(1, self.tries + 1):
            headers = {
                "Content-Type": "application/json",
                "Standby-Event": event,
                "User-Agent": "Standby-Callbacks/1",
            }
            if self.secret:
                headers["Standby-Signature"] = sign(self.secret, body, int(self.clock()))
            try:
                async with self._session.post(
                    url,
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self.timeout),
                ) as response:
                    if 200 <= response.status < 300:
                        return True
                    problem = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as error:
                problem = type(error).__name__
            log.warning(
                "callback %s to %s failed (try %d of %d): %s",
                event,
                _safe(url),
                attempt,
                self.tries,
                problem,
            )
            if attempt < self.tries:
                await asyncio.sleep(self.pause * 2 ** (attempt - 1))
        log.error("callback %s to %s given up after %d tries", event, _safe(url), self.tries)
        return False

    async def aclose(self, grace: float = 2.0) -> None:
        """Let deliveries in flight finish for ``grace`` seconds, then cancel the rest."""
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._session is not None:
            await self._session.close()
            self._session = None


def _safe(url: str) -> str:
    """The URL without credentials or query string, which may carry a receiver's token."""
    try:
        return str(URL(url).with_user(None).with_query(None).with_fragment(None))
    except ValueError:
        return "<unparseable URL>"
