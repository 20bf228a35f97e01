"""Where a status page subscriber's webhook may go, how it proves it wants the deliveries
(the challenge), and the one HTTP session that reaches it.

The URL comes from a public form, so unless the plan allows private webhooks it may not
reach loopback, private, link-local (cloud metadata), multicast or reserved addresses:
the rule of deferred callbacks (``standby.deferred.policy``) with no host listed.  It is
judged when the visitor subscribes (the host is looked up: a clear 400) and again on
every connection, on the addresses aiohttp is about to use (``GuardedResolver``), so a
name that resolves elsewhere later (DNS rebinding) still cannot reach the inside.
Redirects are never followed.

The challenge: a JSON ``POST`` of ``{"type": "subscription.challenge", "challenge":
<random>, "subscriber": <id>}``; the receiver answers 2xx with ``{"challenge": <the
value>}``, the value as a JSON string, or the bare value, within ``challenge_timeout``
and ``CHALLENGE_READ`` bytes.  Only what the receiver could not have guessed counts.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import secrets
import socket

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver
from yarl import URL

from standby.deferred.callbacks import CallbackRefused, GuardedResolver
from standby.deferred.policy import CallbackHosts, address_refusal, url_host, url_refusal
from standby.errors import InvalidRequest

USER_AGENT = "Standby-Status/1"
CHALLENGE_EVENT = "subscription.challenge"
CHALLENGE_READ = 4096  # bytes of a challenge's answer read; a longer answer fails
RESOLVE_TIMEOUT = 2.0  # seconds to look the host up while the visitor waits
MAX_URL = 2048
PUBLIC = CallbackHosts()  # no host listed: public addresses only


def echoed(answer: bytes) -> str:
    """The challenge a receiver answered: ``{"challenge": …}``, a JSON string, or the
    bare value."""
    try:
        value = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return answer.decode("utf-8", "replace").strip()
    if isinstance(value, dict):
        found = value.get("challenge")
        return found if isinstance(found, str) else ""
    return value if isinstance(value, str) else answer.decode("utf-8", "replace").strip()


async def read_at_most(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """At most ``limit`` bytes of a body; the rest is never read."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Webhooks:
    """The guard and the connections of subscribers' webhooks.

    ``limit`` bounds the connections open at once, ``challenge_timeout`` the whole
    challenge (answer included); ``resolver`` looks host names up (aiohttp's default
    when None; tests script DNS).
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        limit: int,
        challenge_timeout: float = 5.0,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.limit = limit
        self.challenge_timeout = challenge_timeout
        self._given = resolver
        self._resolver: AbstractResolver | None = None
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        where = "any address" if self.allow_private else "public addresses only"
        return f"<Webhooks {where} limit={self.limit}>"

    def refusal(self, url: str) -> str | None:
        """Why a webhook may not go to ``url``, judged from the URL alone (at delivery:
        its addresses are judged as it connects)."""
        return None if self.allow_private else url_refusal(url, PUBLIC)

    async def check(self, url: str) -> str:
        """``url`` when a visitor may subscribe it, else a 400 saying why."""
        if len(url) > MAX_URL:
            raise InvalidRequest(
                f"The webhook URL is longer than {MAX_URL} characters.", param="url"
            )
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            raise InvalidRequest("The webhook URL cannot be parsed.", param="url") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise InvalidRequest(
                "The webhook URL must be http:// or https:// with a host.", param="url"
            )
        if self.allow_private:
            return url
        refusal = url_refusal(url, PUBLIC)
        host = url_host(parsed)
        if refusal is None and not _is_ip(host):
            try:
                async with asyncio.timeout(RESOLVE_TIMEOUT):
                    found = await self._lookup().resolve(host, 0, socket.AF_UNSPEC)
            except (OSError, TimeoutError, ValueError):
                raise InvalidRequest(
                    f"The webhook's host {host!r} does not resolve.", param="url"
                ) from None
            refusals = (address_refusal(host, info["host"], PUBLIC) for info in found)
            refusal = next((r for r in refusals if r is not None), None)
        if refusal is not None:
            reason = refusal.replace("callback URL", "webhook URL")
            raise InvalidRequest(f"This webhook URL is not allowed: {reason}.", param="url")
        return url

    async def challenge(self, url: str, subscriber_id: str) -> str | None:
        """None when ``url`` echoed a fresh challenge, else why not (for the visitor)."""
        challenge = secrets.token_urlsafe(24)
        body = orjson.dumps(
            {"type": CHALLENGE_EVENT, "challenge": challenge, "subscriber": subscriber_id}
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Standby-Event": CHALLENGE_EVENT,
        }
        timeout = self.challenge_timeout
        try:
            async with asyncio.timeout(timeout):
                async with self.session().post(
                    url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    if not 200 <= response.status < 300:
                        return f"it answered HTTP {response.status}"
                    answer = await read_at_most(response.content, CHALLENGE_READ + 1)
        except TimeoutError:
            return f"it did not answer within {timeout:g} s"
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, CallbackRefused):
                return str(exc.os_error)
            return "it could not be reached"
        except (aiohttp.ClientError, ValueError):
            return "the request to it failed"
        if len(answer) > CHALLENGE_READ:
            return f"its answer is longer than {CHALLENGE_READ} bytes"
        if not hmac.compare_digest(echoed(answer).encode(), challenge.encode()):
            return "its answer did not echo the challenge"
        return None

    def _lookup(self) -> AbstractResolver:
        if self._resolver is None:
            self._resolver = self._given or aiohttp.DefaultResolver()
        return self._resolver

    def session(self) -> aiohttp.ClientSession:
        """The one session (opened on first use): every connection asks the guard."""
        if self._session is None or self._session.closed:
            resolver = self._lookup()
            if not self.allow_private:
                resolver = GuardedResolver(PUBLIC, resolver)
            connector = aiohttp.TCPConnector(
                resolver=resolver,
                use_dns_cache=False,  # every new connection is judged on what it resolves to
                limit=self.limit,
            )
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None and self._given is None:
            await self._resolver.close()
        self._resolver = None
