"""OfficialWatcher against a real status server on loopback: readings follow the page,
conditional GETs and 304s, backoff after an error, an unreachable page. Time is injected:
nothing here sleeps to wait for a schedule."""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from standby.watch.official import (
    FetchLimits,
    Level,
    OfficialWatcher,
    Reading,
    StatusPageSpec,
)
from tests.watch.official.payloads import HTML_PAGE, incident, summary, update

INTERVAL = 60.0
WATCH = ("Chat Completions", "Embeddings")
OPERATIONAL = summary({"Chat Completions": "operational", "Embeddings": "operational"})
OUTAGE = summary(
    {"Chat Completions": "major_outage", "Embeddings": "operational"},
    "critical",
    [
        incident(
            "inc1",
            "Chat Completions unavailable",
            "investigating",
            "critical",
            [update("investigating", "We are investigating.", "2026-07-01T10:00:00Z")],
            ["Chat Completions"],
        )
    ],
)
LAST_MODIFIED = "Wed, 01 Jul 2026 10:00:00 GMT"


class StatusServer:
    """A Statuspage v2 ``summary.json`` on 127.0.0.1 that the test switches."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = OPERATIONAL
        self.raw: bytes | None = None  # served instead of the document
        self.fail_next = 0  # answer this many requests with a 500
        self.hang = asyncio.Event()  # hold requests while ``hanging`` (never set by tests)
        self.hanging = False
        self.requests: list[dict[str, str]] = []
        self.conditional_hits = 0  # requests answered 304
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        if self.hanging:
            await self.hang.wait()
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=500, text="upstream trouble")
        body = self.raw if self.raw is not None else orjson.dumps(self.document)
        etag = etag_of(body)
        if request.headers.get("If-None-Match") == etag:
            self.conditional_hits += 1
            return web.Response(status=304, headers={"ETag": etag})
        kind = "text/html" if body.startswith(b"<") else "application/json"
        headers = {"ETag": etag, "Last-Modified": LAST_MODIFIED}
        return web.Response(body=body, content_type=kind, headers=headers)


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


@pytest.fixture
async def server() -> AsyncIterator[StatusServer]:
    status = StatusServer()
    app = web.Application()
    app.router.add_get("/api/v2/summary.json", status.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    status.url = f"http://{host}:{port}/api/v2/summary.json"
    yield status
    status.hang.set()
    await runner.cleanup()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Reading]] = []

    def __call__(self, provider: str, reading: Reading) -> None:
        self.seen.append((provider, reading))


def spec(url: str) -> StatusPageSpec:
    return StatusPageSpec(url=url, format="statuspage", components=WATCH, interval=INTERVAL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_readings_follow_the_page_and_304s_keep_the_last(server: StatusServer) -> None:
    clock, wall, seen = Clock(1000.0), Clock(1_782_900_000.0), Recorder()
    watcher = OfficialWatcher("openai", spec(server.url), seen, clock=clock, wall=wall)
    try:
        first = await watcher.poll_once()
        assert first.error is None and first.indicator is Level.OPERATIONAL
        assert first.components == {
            "Chat Completions": Level.OPERATIONAL,
            "Embeddings": Level.OPERATIONAL,
        }
        assert first.fetched_at == 1_782_900_000.0 and first.source_url == server.url
        assert "If-None-Match" not in server.requests[0]

        wall.now += 60.0
        second = await watcher.poll_once()  # unchanged: the server answers 304
        assert server.conditional_hits == 1
        assert server.requests[1]["If-None-Match"] == etag_of(orjson.dumps(OPERATIONAL))
        assert server.requests[1]["If-Modified-Since"] == LAST_MODIFIED
        assert second == replace(first, fetched_at=first.fetched_at + 60.0)

        server.document = OUTAGE
        wall.now += 60.0
        third = await watcher.poll_once()  # the ETag no longer matches: the whole page
        assert server.conditional_hits == 1
        assert third.indicator is Level.MAJOR_OUTAGE
        assert third.components["Chat Completions"] is Level.MAJOR_OUTAGE
        assert third.worst(["Chat Completions"]) is Level.MAJOR_OUTAGE
        assert [i.name for i in third.incidents] == ["Chat Completions unavailable"]

        server.document = OPERATIONAL
        fourth = await watcher.poll_once()
        assert fourth.indicator is Level.OPERATIONAL and fourth.incidents == ()
        assert seen.seen == [("openai", r) for r in (first, second, third, fourth)]
        assert watcher.reading is fourth and watcher.schedule.errors == 0
    finally:
        await watcher.stop()


async def test_a_500_backs_off_and_the_next_success_resets(server: StatusServer) -> None:
    clock = Clock(1000.0)
    mirror = random.Random(11)  # the same draws as the watcher's, to predict its times
    watcher = OfficialWatcher(
        "openai", spec(server.url), Recorder(), clock=clock, rng=random.Random(11)
    )
    try:
        assert watcher.schedule.due(1000.0)
        server.fail_next = 1
        failed = await watcher.poll_once()
        assert failed.error == "HTTP 500" and failed.indicator is Level.UNKNOWN
        assert failed.components == {} and failed.worst(WATCH) is Level.UNKNOWN
        assert watcher.schedule.errors == 1
        assert watcher.schedule.next_at == pytest.approx(
            1000.0 + 2 * INTERVAL * mirror.uniform(0.9, 1.1)
        )

        server.fail_next = 1
        clock.now = watcher.schedule.next_at
        await watcher.poll_once()
        assert watcher.schedule.errors == 2
        assert watcher.schedule.next_at == pytest.approx(
            clock.now + 4 * INTERVAL * mirror.uniform(0.9, 1.1)
        )

        clock.now = watcher.schedule.next_at
        recovered = await watcher.poll_once()
        assert recovered.error is None and recovered.indicator is Level.OPERATIONAL
        assert watcher.schedule.errors == 0
        assert watcher.schedule.next_at == pytest.approx(
            clock.now + INTERVAL * mirror.uniform(0.9, 1.1)
        )
    finally:
        await watcher.stop()


async def test_an_unreachable_page_is_unknown_not_down() -> None:
    url = f"http://127.0.0.1:{free_port()}/api/v2/summary.json"
    watcher = OfficialWatcher("openai", spec(url), Recorder(), clock=Clock(0.0))
    try:
        reading = await watcher.poll_once()
        assert reading.error is not None and reading.error.startswith("unreachable")
        assert reading.indicator is Level.UNKNOWN and reading.worst(WATCH) is Level.UNKNOWN
        assert reading.source_url == url and watcher.schedule.errors == 1
    finally:
        await watcher.stop()


async def test_an_html_page_is_unknown_and_is_asked_for_whole_next_time(
    server: StatusServer,
) -> None:
    watcher = OfficialWatcher("openai", spec(server.url), Recorder(), clock=Clock(0.0))
    try:
        await watcher.poll_once()
        server.raw = HTML_PAGE  # e.g. the page moved behind a login
        html = await watcher.poll_once()
        assert html.indicator is Level.UNKNOWN and html.error is not None and "HTML" in html.error
        assert watcher.schedule.errors == 1
        server.raw = None
        back = await watcher.poll_once()
        assert "If-None-Match" not in server.requests[-1]  # no 304 onto an unknown reading
        assert back.indicator is Level.OPERATIONAL and server.conditional_hits == 0
    finally:
        await watcher.stop()


async def test_a_304_after_an_outage_of_the_page_keeps_the_last_good_reading(
    server: StatusServer,
) -> None:
    watcher = OfficialWatcher("openai", spec(server.url), Recorder(), clock=Clock(0.0))
    try:
        good = await watcher.poll_once()
        server.fail_next = 1
        assert (await watcher.poll_once()).error == "HTTP 500"
        kept = await watcher.poll_once()
        assert server.conditional_hits == 1 and kept.error is None
        assert kept.components == good.components
    finally:
        await watcher.stop()


async def test_a_body_over_the_limit_is_not_read(server: StatusServer) -> None:
    server.raw = b'{"status": {"indicator": "none"}, "pad": "' + b"x" * 5000 + b'"}'
    watcher = OfficialWatcher(
        "openai", spec(server.url), Recorder(), limits=FetchLimits(max_body=1000), clock=Clock(0.0)
    )
    try:
        reading = await watcher.poll_once()
        assert reading.error == "body over 1000 bytes" and reading.indicator is Level.UNKNOWN
    finally:
        await watcher.stop()


async def test_a_silent_page_times_out(server: StatusServer) -> None:
    server.hanging = True
    watcher = OfficialWatcher(
        "openai", spec(server.url), Recorder(), limits=FetchLimits(timeout=0.2), clock=Clock(0.0)
    )
    try:
        reading = await watcher.poll_once()
        assert reading.error == "timed out after 0.2 s" and reading.indicator is Level.UNKNOWN
    finally:
        await watcher.stop()


async def test_a_failing_consumer_does_not_stop_the_watcher(server: StatusServer) -> None:
    calls: list[str] = []

    async def broken(provider: str, reading: Reading) -> None:
        calls.append(provider)
        raise RuntimeError("consumer bug")

    watcher = OfficialWatcher("groq", spec(server.url), broken, clock=Clock(0.0))
    try:
        assert (await watcher.poll_once()).indicator is Level.OPERATIONAL
        assert (await watcher.poll_once()).indicator is Level.OPERATIONAL
        assert calls == ["groq", "groq"]  # awaited, twice
    finally:
        await watcher.stop()


async def test_start_polls_at_once_and_stop_cancels(server: StatusServer) -> None:
    first = asyncio.Event()

    def on_reading(provider: str, reading: Reading) -> None:
        first.set()

    watcher = OfficialWatcher("openai", spec(server.url), on_reading)
    watcher.start()
    watcher.start()  # already running: no second task
    try:
        await asyncio.wait_for(first.wait(), timeout=5.0)
        assert watcher.running and len(server.requests) == 1
        assert watcher.reading is not None and watcher.reading.indicator is Level.OPERATIONAL
        assert "running" in repr(watcher)
    finally:
        await watcher.stop()
    assert not watcher.running and "stopped" in repr(watcher)
    await watcher.stop()  # twice is fine


async def test_a_shared_session_is_left_open(server: StatusServer) -> None:
    async with aiohttp.ClientSession() as session:
        watcher = OfficialWatcher(
            "openai", spec(server.url), Recorder(), session=session, clock=Clock(0.0)
        )
        await watcher.poll_once()
        await watcher.stop()
        assert not session.closed
