"""Signed callbacks: how a deferred completion is POSTed to the caller's URL.

Every callback is a JSON ``POST`` with two headers::

    Standby-Event: completion.deferred.completed      (or completion.deferred.failed)
    Standby-Signature: t=1718000000,v1=5257a869e7ecebed…

``t`` is the unix time of signing and ``v1`` the lowercase hex HMAC-SHA256 of
``f"{t}.{body}"`` (the timestamp, a dot, then the exact body bytes) keyed with the
callback secret: the plan's ``journal.callback_secret``, or else one generated and kept
beside the journal (``standby.journal.service``).  A receiver recomputes the HMAC over
the raw body it received, compares in constant time, and refuses a ``t`` too far from
its own clock (a replay): :func:`verify_signature` does all three.  Several ``v1=``
entries may appear while a secret is being rotated; one match is enough.  Every
callback is signed: there is no unsigned mode.

Where a callback may go is the plan's ``journal.callback_hosts`` (the rule is
``standby.deferred.policy.url_refusal``).  It is checked when the caller asks
(:meth:`CallbackSender.check`, a 400 for the caller) and again on delivery, on the
addresses the connection may actually use: the session's resolver
(:class:`GuardedResolver`) drops every address the rule refuses, so a name that
resolved to a public address at request time and to ``127.0.0.1`` later (DNS
rebinding) still cannot reach ``127.0.0.1``.  Redirects are not followed, and nothing of
the receiver's answer but its status line and headers is read.

Delivery is bounded: each try times out after ``timeout`` seconds, a failed try (network
error or a status other than 2xx and 3xx) is repeated up to ``tries`` times with
doubling pauses, and then given up with a log line; a refused address or a redirect is
given up at once.  Delivery is at most once per completion: the answer is journaled
before it is sent, so a gateway killed mid-delivery does not resend it after restart
(the answer stays retrievable as a stored completion).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import socket
from collections.abc import Callable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from standby.deferred.policy import (
    CallbackHosts,
    address_refusal,
    url_host,
    url_refusal,
)

log = logging.getLogger("standby.deferred")

COMPLETED_EVENT = "completion.deferred.completed"
FAILED_EVENT = "completion.deferred.failed"
RESOLVE_TIMEOUT = 2.0  # seconds a request-time lookup of a callback host may take


class CallbackRefused(OSError):
    """A callback URL, or every address its host resolves to, is not allowed.

    An ``OSError`` so that aiohttp reports it from inside a connection attempt (wrapped
    in ``ClientConnectorDNSError``) rather than as an unexpected crash.
    """


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


class GuardedResolver(AbstractResolver):
    """Resolves through ``inner`` and keeps only the addresses a callback may connect to.

    aiohttp connects only to what its resolver returns, so this is the last word on
    where a callback goes, whatever the name resolved to at request time.
    """

    def __init__(self, hosts: CallbackHosts, inner: AbstractResolver) -> None:
        self.hosts = hosts
        self.inner = inner

    def __repr__(self) -> str:
        return f"<GuardedResolver {self.hosts!r}>"

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        kept: list[ResolveResult] = []
        refusals: list[str] = []
        for info in found:
            refusal = address_refusal(host, info["host"], self.hosts)
            if refusal is None:
                kept.append(info)
            else:
                refusals.append(refusal)
        if not kept:
            raise CallbackRefused(refusals[0] if refusals else f"{host!r} has no address")
        return kept

    async def close(self) -> None:
        await self.inner.close()


class CallbackSender:
    """POSTs signed callbacks in background tasks, so a slow receiver never blocks.

    ``resolver`` looks host names up (aiohttp's default resolver when None); tests
    inject one to play DNS.
    """

    def __init__(
        self,
        secret: str,
        hosts: CallbackHosts,
        *,
        clock: Callable[[], float],
        resolver: AbstractResolver | None = None,
        timeout: float = 10.0,
        tries: int = 3,
        pause: float = 1.0,
    ) -> None:
        if not secret:
            raise ValueError("callbacks are always signed: a secret is required")
        self.secret = secret
        self.hosts = hosts
        self.clock = clock
        self.timeout = timeout
        self.tries = tries
        self.pause = pause
        self._resolver = resolver
        self._own_resolver = resolver is None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[bool]] = set()

    def __repr__(self) -> str:
        return f"<CallbackSender pending={len(self._tasks)} tries={self.tries} {self.hosts!r}>"

    def _lookup(self) -> AbstractResolver:
        if self._resolver is None:
            self._resolver = aiohttp.DefaultResolver()
        return self._resolver

    async def check(self, url: str) -> None:
        """Raise :class:`CallbackRefused` when ``url`` may not be called back.

        A host name is looked up (for at most ``RESOLVE_TIMEOUT``) so the caller hears
        now that it names a private address.  A lookup that fails is let through:
        delivery checks again, on the addresses it connects to.
        """
        refusal = url_refusal(url, self.hosts)
        if refusal is not None:
            raise CallbackRefused(refusal)
        host = url_host(URL(url))
        if self.hosts.listed(host) or _is_ip(host):
            return  # a listed host may resolve anywhere; a literal was judged above
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT):
                found = await self._lookup().resolve(host, 0, socket.AF_UNSPEC)
        except (OSError, TimeoutError, ValueError) as error:
            log.info("callback host %r did not resolve now (%s)", host, type(error).__name__)
            return
        for info in found:
            refusal = address_refusal(host, info["host"], self.hosts)
            if refusal is not None:
                raise CallbackRefused(refusal)

    def send(self, url: str, event: str, body: bytes) -> asyncio.Task[bool]:
        """Start delivering ``body`` to ``url`` in the background; the task says if it did."""
        task = asyncio.create_task(self.deliver(url, event, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def idle(self) -> None:
        """Wait until no delivery is under way (for tests and orderly shutdown)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self.hosts, self._lookup()),
            use_dns_cache=False,  # every connection asks the guarded resolver
            force_close=True,  # an unread answer is dropped with its connection
            limit=20,
        )
        return aiohttp.ClientSession(connector=connector, trust_env=False)

    async def deliver(self, url: str, event: str, body: bytes) -> bool:
        """Try up to ``tries`` times; True once the receiver answered 2xx."""
        refusal = url_refusal(url, self.hosts)
        if refusal is not None:
            log.error("callback %s to %s refused: %s", event, safe_url(url), refusal)
            return False
        if self._session is None or self._session.closed:
            self._session = self._open()
        for attempt in range(1, self.tries + 1):
            headers = {
                "Content-Type": "application/json",
                "Standby-Event": event,
                "Standby-Signature": sign(self.secret, body, int(self.clock())),
                "User-Agent": "Standby-Callbacks/1",
            }
            try:
                async with self._session.post(
                    url,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=self.timeout),
                ) as response:
                    status = response.status  # the body is never read
            except aiohttp.ClientConnectorError as error:
                if isinstance(error.os_error, CallbackRefused):
                    log.error("callback %s to %s refused: %s", event, safe_url(url), error.os_error)
                    return False
                problem = type(error).__name__
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                problem = type(error).__name__  # ValueError: a name the resolver cannot encode
            else:
                if 200 <= status < 300:
                    return True
                if 300 <= status < 400:
                    log.error(
                        "callback %s to %s answered HTTP %d: redirects are not followed",
                        event,
                        safe_url(url),
                        status,
                    )
                    return False
                problem = f"HTTP {status}"
            log.warning(
                "callback %s to %s failed (try %d of %d): %s",
                event,
                safe_url(url),
                attempt,
                self.tries,
                problem,
            )
            if attempt < self.tries:
                await asyncio.sleep(self.pause * 2 ** (attempt - 1))
        log.error("callback %s to %s given up after %d tries", event, safe_url(url), self.tries)
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
        if self._own_resolver and self._resolver is not None:
            await self._resolver.close()
            self._resolver = None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def safe_url(url: str) -> str:
    """The URL without credentials or query string, which may carry a receiver's token."""
    try:
        return str(URL(url).with_user(None).with_query(None).with_fragment(None))
    except ValueError:
        return "<unparseable URL>"
