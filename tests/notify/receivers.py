"""Test doubles for notifications: a hand-moved clock, a sleep that only records, and a
real HTTP receiver on loopback that records requests and answers as scripted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from standby.notify.delivery import Wiring
from standby.notify.retry import Retry

WAIT = 5.0  # bound on every wait for something to arrive
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class Clock:
    """Unix time that moves only when a test moves it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Pauses:
    """A ``sleep`` that returns at once and remembers what it was asked to wait."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


def wiring(clock: Clock, pauses: Pauses, **fields: Any) -> Wiring:
    """Retries at once (recorded in ``pauses``), with no jitter: ``random`` is 0."""
    fields.setdefault("retry", Retry(tries=4, backoff=1.0, max_backoff=8.0, max_retry_after=30))
    return Wiring(clock=clock, sleep=pauses, random=lambda: 0.0, **fields)


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Got:
    """One request as received."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # the receiver's clock when it arrived

    def json(self) -> Any:
        return orjson.loads(self.body)


class Receiver:
    """Records every request; answers with the next scripted :class:`Answer`, then with
    ``default``. While ``hold`` is an unset event, requests wait before answering.
    ``clock`` stamps each request (a signature is checked against the time it arrived)."""

    def __init__(
        self, *answers: Answer, default: Answer | None = None, clock: Clock | None = None
    ) -> None:
        self.clock = clock or Clock()
        self.answers = list(answers)
        self.default = default or Answer()
        self.got: list[Got] = []
        self.hold: asyncio.Event | None = None
        self.url = ""
        self.in_flight = 0
        self.most_in_flight = 0  # requests being answered at once, at most
        self._arrived = asyncio.Condition()

    async def handle(self, request: web.Request) -> web.Response:
        got = Got(request.path_qs, dict(request.headers), await request.read(), self.clock())
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            async with self._arrived:
                self.got.append(got)
                self._arrived.notify_all()
            if self.hold is not None:
                await self.hold.wait()
            answer = self.answers.pop(0) if self.answers else self.default
            return web.Response(status=answer.status, body=answer.body, headers=answer.headers)
        finally:
            self.in_flight -= 1

    async def wait_for(self, count: int) -> list[Got]:
        """The first ``count`` requests, once they have arrived (within ``WAIT``)."""
        async with asyncio.timeout(WAIT), self._arrived:
            await self._arrived.wait_for(lambda: len(self.got) >= count)
        return self.got[:count]


@asynccontextmanager
async def serving(receiver: Receiver, path: str = "/hook") -> AsyncIterator[Receiver]:
    """``receiver`` listening on 127.0.0.1 (a free port); ``receiver.url`` ends in ``path``."""
    app = web.Application()
    app.router.add_post(path, receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}{path}"
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        await runner.cleanup()


async def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port
