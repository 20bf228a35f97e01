"""Polling one provider's official status page.

:class:`PollSchedule` decides when; it is a pure state machine with an injected clock
(every call takes ``now``) and an injected random source, in the style of
``standby.health.breaker``::

    due at start ──poll──▶ ok:    next = now + interval * U(1 - jitter, 1 + jitter)
                           error: next = now + min(interval * 2**errors * U(...),
                                                   cap * interval)
    an ok poll after errors resets the backoff

:class:`OfficialWatcher` does the I/O: one conditional GET per poll (``If-None-Match``
from the last ``ETag``, ``If-Modified-Since`` from the last ``Last-Modified``; a 304 keeps
the previous reading with a new ``fetched_at``), bounded in time and size, parsed by the
page's format, handed to ``on_reading(provider, reading)``. Whatever goes wrong — refused,
timed out, an HTTP error, a body too large, HTML, unparsable — becomes a reading with
``error`` set (level ``unknown``) and a longer wait, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import aiohttp

from standby.watch.official.formats import parse_page
from standby.watch.official.model import Reading
from standby.watch.official.pages import StatusPageSpec

log = logging.getLogger("standby.watch")

OnReading = Callable[[str, Reading], Awaitable[None] | None]
_MAX_DOUBLINGS = 32  # 2**32 intervals is far past any cap
_MAX_ERROR = 300  # characters of an error message kept
_ACCEPT = {
    "statuspage": "application/json",
    "google-cloud": "application/json",
    "feed": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.1",
}


class PollSchedule:
    """When to poll next. Not thread-safe: use it from one event loop."""

    __slots__ = ("_cap", "_errors", "_interval", "_jitter", "_next_at", "_rng")

    def __init__(
        self,
        interval: float,
        rng: random.Random,
        *,
        now: float = 0.0,
        jitter: float = 0.1,
        cap: float = 10.0,
    ) -> None:
        """The first poll is due at ``now``. ``jitter``: ± share of the interval;
        ``cap``: the longest wait, in intervals."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._interval = interval
        self._rng = rng
        self._jitter = jitter
        self._cap = cap
        self._errors = 0
        self._next_at = now

    @property
    def next_at(self) -> float:
        """When the next poll is due."""
        return self._next_at

    @property
    def errors(self) -> int:
        """Failed polls since the last good one."""
        return self._errors

    @property
    def interval(self) -> float:
        return self._interval

    def due(self, now: float) -> bool:
        """Is a poll due at ``now``?"""
        return now >= self._next_at

    def wait(self, now: float) -> float:
        """Seconds from ``now`` until the next poll (0 when due)."""
        return max(0.0, self._next_at - now)

    def succeeded(self, now: float) -> float:
        """A poll read the page: back to the plain interval. Returns the next time."""
        self._errors = 0
        self._next_at = now + self._interval * self._spread()
        return self._next_at

    def failed(self, now: float) -> float:
        """A poll could not read the page: wait twice as long as after the previous
        error, at most ``cap`` intervals. Returns the next time."""
        self._errors += 1
        grown = self._interval * 2.0 ** min(self._errors, _MAX_DOUBLINGS)
        self._next_at = now + min(grown * self._spread(), self._cap * self._interval)
        return self._next_at

    def _spread(self) -> float:
        return self._rng.uniform(1.0 - self._jitter, 1.0 + self._jitter)

    def __repr__(self) -> str:
        return (
            f"<PollSchedule interval={self._interval:g} next_at={self._next_at:.2f} "
            f"errors={self._errors}>"
        )


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Bounds of one poll."""

    timeout: float = 10.0  # the whole request, body included
    max_body: int = 2 * 1024 * 1024  # bytes, after decompression
    user_agent: str = "Standby-status-watch/0.1"


class OfficialWatcher:
    """Polls one provider's official page and reports each reading. One asyncio task
    between ``start()`` and ``stop()``; ``poll_once()`` polls at once (for tests)."""

    def __init__(
        self,
        provider: str,
        spec: StatusPageSpec,
        on_reading: OnReading,
        *,
        limits: FetchLimits = FetchLimits(),
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        """``session``: shared with other watchers (its owner closes it); without one
        the watcher opens its own and closes it on ``stop()``. ``clock`` schedules the
        polls (monotonic); ``wall`` stamps the readings (seconds since the epoch)."""
        self.provider = provider
        self.spec = spec
        self.limits = limits
        self._on_reading = on_reading
        self._session = session
        self._own_session = session is None
        self._clock = clock
        self._wall = wall
        self.schedule = PollSchedule(spec.interval, rng or random.Random(), now=clock())
        self._reading: Reading | None = None
        self._kept: Reading | None = None  # the last reading of a page that was read
        self._etag = ""
        self._last_modified = ""
        self._task: asyncio.Task[None] | None = None

    @property
    def reading(self) -> Reading | None:
        """The last reading, if any poll happened."""
        return self._reading

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start polling (the first poll at once) in one task of the running loop."""
        if self.running:
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"standby-official-{self.provider}"
        )

    async def stop(self) -> None:
        """Cancel the polling task and close the watcher's own session."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def poll_once(self) -> Reading:
        """Poll now: fetch, read, reschedule, report. Returns the reading."""
        reading = await self._fetch()
        now = self._clock()
        if reading.error is None:
            self.schedule.succeeded(now)
        else:
            self.schedule.failed(now)
            log.info("official page of %s: %s", self.provider, reading.error)
        self._reading = reading
        try:
            result = self._on_reading(self.provider, reading)
            if inspect.isawaitable(result):
                await result
        except Exception:  # a broken consumer must not stop the polling
            log.exception("on_reading failed for %s", self.provider)
        return reading

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.schedule.wait(self._clock()))
            try:
                await self.poll_once()
            except Exception:  # a bug here must not end the polling for good
                log.exception("polling the official page of %s failed", self.provider)
                self.schedule.failed(self._clock())

    async def _fetch(self) -> Reading:
        url = self.spec.url
        try:
            async with asyncio.timeout(self.limits.timeout):
                status, body = await self._get()
        except TimeoutError:
            return self._failed(f"timed out after {self.limits.timeout:g} s")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return self._failed(f"unreachable: {type(exc).__name__}: {exc}")
        fetched_at = self._wall()
        if status == 304:
            if self._kept is None:
                return self._failed("304 Not Modified with no reading to keep")
            return replace(self._kept, fetched_at=fetched_at)
        if status != 200:
            return self._failed(f"HTTP {status}")
        if body is None:
            return self._failed(f"body over {self.limits.max_body} bytes")
        try:
            reading = parse_page(
                self.spec.format,
                body,
                source_url=url,
                fetched_at=fetched_at,
                components=self.spec.components,
            )
        except Exception as exc:  # vendor content must never take the watcher down
            log.exception("reading the official page of %s failed", self.provider)
            return self._failed(f"unparsable: {type(exc).__name__}")
        if reading.error is not None:
            self._etag = self._last_modified = ""  # ask for the whole page next time
        else:
            self._kept = reading
        return reading

    async def _get(self) -> tuple[int, bytes | None]:
        """The status and, for a 200, the body (``None``: over ``max_body``)."""
        headers = {"Accept": _ACCEPT[self.spec.format]}
        if self._etag:
            headers["If-None-Match"] = self._etag
        if self._last_modified:
            headers["If-Modified-Since"] = self._last_modified
        async with self._client().get(self.spec.url, headers=headers) as response:
            if response.status != 200:
                return response.status, b""
            limit = self.limits.max_body
            if (response.content_length or 0) > limit:
                return 200, None
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > limit:
                    return 200, None
                chunks.append(chunk)
            self._etag = response.headers.get("ETag", "")
            self._last_modified = response.headers.get("Last-Modified", "")
            return 200, b"".join(chunks)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.limits.timeout),
                headers={"User-Agent": self.limits.user_agent},
            )
        return self._session

    def _failed(self, error: str) -> Reading:
        return Reading.failed(self.spec.url, self._wall(), error[:_MAX_ERROR])

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<OfficialWatcher {self.provider} {state} {self.spec.url} {self.schedule!r}>"
