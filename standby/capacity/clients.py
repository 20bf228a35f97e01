"""Each client's own limits: requests and tokens per minute, and a daily token budget.

``server.client_keys.<name>`` may set ``requests_per_minute``, ``tokens_per_minute`` and
``tokens_per_day``.  Before a request is routed, ``admit`` takes one request from the
client's minute and checks its token windows; a limit spent is a ``RateLimited`` — a 429
in the wire's own format with Retry-After — and every answer to a limited client carries
OpenAI's ``x-ratelimit-*`` headers (limit, remaining, reset), so the official SDKs'
back-off works as it does against OpenAI.  Tokens are counted after the answer (``spent``):
the request that crosses a token limit is served, the next one is refused.

Counts live in the ledger: one count per client for every replica when they share Redis.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

from standby.capacity.ledger import Ledger
from standby.errors import RateLimited
from standby.plan.model import ClientKey

log = logging.getLogger("standby.capacity")

MINUTE, DAY = 60.0, 86_400.0
Headers = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class ClientLimit:
    requests_per_minute: int | None
    tokens_per_minute: int | None
    tokens_per_day: int | None


def reset_text(seconds: float) -> str:
    """A duration as OpenAI writes its resets: ``1s``, ``6m0s``, ``1h2m3s``, ``120ms``."""
    if seconds < 1.0:
        return f"{max(1, round(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class ClientLimits:
    def __init__(self, keys: Mapping[str, ClientKey], ledger: Ledger) -> None:
        self.ledger = ledger
        self._tasks: set[asyncio.Task[None]] = set()
        self.reload(keys)

    def reload(self, keys: Mapping[str, ClientKey]) -> None:
        self._limits = {
            name: ClientLimit(key.requests_per_minute, key.tokens_per_minute, key.tokens_per_day)
            for name, key in keys.items()
            if key.requests_per_minute or key.tokens_per_minute or key.tokens_per_day
        }

    def limited(self, client: str | None) -> bool:
        return client is not None and client in self._limits

    async def admit(self, client: str | None) -> Headers:
        """Count one request of ``client``; its ``x-ratelimit-*`` headers, or ``RateLimited``."""
        limit = self._limits.get(client) if client is not None else None
        if limit is None:
            return ()
        headers: list[tuple[bytes, bytes]] = []
        if limit.tokens_per_day is not None:
            day = await self.ledger.check(f"client-tokens-day:{client}", limit.tokens_per_day, DAY)
            if not day.granted:
                raise RateLimited(
                    f"Rate limit reached for client {client} on tokens per day: Limit "
                    f"{limit.tokens_per_day}, Used {day.used}. Please try again in "
                    f"{reset_text(day.retry_after)}.",
                    retry_after=day.retry_after,
                    kind="tokens",
                    headers=_retry(day.retry_after),
                )
        if limit.tokens_per_minute is not None:
            tpm = limit.tokens_per_minute
            minute = await self.ledger.check(f"client-tokens:{client}", tpm, MINUTE)
            figures = _figures("tokens", tpm, tpm - minute.used, minute.retry_after)
            if not minute.granted:
                raise RateLimited(
                    f"Rate limit reached for client {client} on tokens per min (TPM): Limit "
                    f"{tpm}, Used {minute.used}. Please try again in "
                    f"{reset_text(minute.retry_after)}.",
                    retry_after=minute.retry_after,
                    kind="tokens",
                    headers=(*figures, *_retry(minute.retry_after)),
                )
            headers.extend(figures)
        if limit.requests_per_minute is not None:
            rpm = limit.requests_per_minute
            grant = await self.ledger.take(f"client:{client}", rpm, MINUTE)
            reset = grant.retry_after if not grant.granted else MINUTE / rpm
            figures = _figures("requests", rpm, rpm - grant.used, reset)
            if not grant.granted:
                raise RateLimited(
                    f"Rate limit reached for client {client} on requests per min (RPM): "
                    f"Limit {rpm}, Used {grant.used}. Please try again in "
                    f"{reset_text(grant.retry_after)}.",
                    retry_after=grant.retry_after,
                    headers=(*figures, *_retry(grant.retry_after)),
                )
            headers.extend(figures)
        return tuple(headers)

    def spent(self, client: str | None, tokens: int) -> None:
        """``client``'s request used ``tokens`` in all: counted in the background."""
        limit = self._limits.get(client) if client is not None else None
        if limit is None or tokens <= 0:
            return
        if limit.tokens_per_minute is None and limit.tokens_per_day is None:
            return
        task = asyncio.get_running_loop().create_task(self._count(str(client), limit, tokens))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _count(self, client: str, limit: ClientLimit, tokens: int) -> None:
        try:
            if limit.tokens_per_minute is not None:
                await self.ledger.add(f"client-tokens:{client}", tokens, MINUTE)
            if limit.tokens_per_day is not None:
                await self.ledger.add(f"client-tokens-day:{client}", tokens, DAY)
        except Exception:  # never fails a request: the count is best effort
            log.exception("capacity: could not count %s tokens of client %s", tokens, client)


def _figures(kind: str, limit: int, remaining: int, reset: float) -> Headers:
    name = kind.encode()
    return (
        (b"x-ratelimit-limit-" + name, str(limit).encode()),
        (b"x-ratelimit-remaining-" + name, str(max(0, remaining)).encode()),
        (b"x-ratelimit-reset-" + name, reset_text(reset).encode()),
    )


def _retry(seconds: float) -> Headers:
    return ((b"retry-after", str(max(1, math.ceil(seconds))).encode()),)
