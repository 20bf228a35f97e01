"""The outcome of sending one notice to one channel, and what every channel is built
with (clock, HTTP sessions, retry policy, a way to wait)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from standby.notify.retry import Retry

ATTEMPT_TIMEOUT = 10.0  # seconds for one attempt: connect, send, status line, capped body
READ_CAP = 4096  # bytes of an error answer kept to explain it; a 2xx body is never read

Sleep = Callable[[float], Awaitable[None]]
SessionFactory = Callable[[], aiohttp.ClientSession]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one notice sent to one channel, ok or not, for the journal.

    ``attempts`` counts the tries; ``status`` is the last HTTP status seen (``None``
    when no answer came, or the channel has none, like Apprise); ``error`` says why it
    failed, with every secret masked; ``trail`` has one short outcome per try
    (``"HTTP 503"``, ``"HTTP 503"``, ``"HTTP 200"``); ``at`` is when the last try ended.
    """

    channel: str
    ok: bool
    attempts: int
    status: int | None
    error: str | None
    at: float
    trail: tuple[str, ...] = ()


def default_session() -> aiohttp.ClientSession:
    """A small keep-alive pool; proxies and ``.netrc`` from the environment are ignored
    (a composition root that needs a proxy passes its own factory)."""
    connector = aiohttp.TCPConnector(limit=16, ttl_dns_cache=60)
    return aiohttp.ClientSession(connector=connector, trust_env=False)


@dataclass(frozen=True, slots=True)
class Wiring:
    """What :func:`standby.notify.channels.build` gives every channel.

    ``clock`` is unix time (it stamps webhook signatures and deliveries). Tests inject
    ``sleep`` (the pause between tries) and ``random`` (the jitter) to run retries at
    once and deterministically. A channel owns the sessions ``session_factory`` makes
    and closes them in ``aclose()``.
    """

    clock: Callable[[], float] = time.time
    session_factory: SessionFactory = default_session
    retry: Retry = field(default_factory=Retry)
    sleep: Sleep = asyncio.sleep
    random: Callable[[], float] = random.random
    timeout: float = ATTEMPT_TIMEOUT
