"""One JSON ``POST`` to a notification endpoint, tried by the :class:`Retry` policy and
bounded: each try has ``Wiring.timeout`` seconds for everything, redirects are not
followed, a 2xx body is not read, and an error body is read only up to ``READ_CAP``
bytes (to say what went wrong). Never raises for a failed delivery: it returns one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp

from standby.notify.delivery import READ_CAP, Delivery, Wiring
from standby.notify.redact import Redactor, origin
from standby.notify.retry import retry_after

log = logging.getLogger("standby.notify")

EXCERPT = 200  # characters of an error body kept in Delivery.error


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One try."""

    status: int | None
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def label(self) -> str:
        return f"HTTP {self.status}" if self.status is not None else (self.error or "failed")


class Poster:
    """POSTs bodies to one URL for one channel."""

    __slots__ = ("_channel", "_redact", "_session", "_url", "_wiring")

    def __init__(self, channel: str, url: str, wiring: Wiring, redact: Redactor) -> None:
        self._channel = channel
        self._url = url
        self._wiring = wiring
        self._redact = redact
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"<Poster {self._channel} {origin(self._url)} tries={self._wiring.retry.tries}>"

    async def post(self, body: bytes, headers: Callable[[], Mapping[str, str]]) -> Delivery:
        """Send ``body`` until it is accepted or the policy gives up.

        ``headers`` is called before every try (a signature's timestamp stays fresh).
        """
        wiring = self._wiring
        trail: list[str] = []
        outcome = _Outcome(None, "not tried")
        for attempt in range(1, wiring.retry.tries + 1):
            outcome = await self._once(body, headers())
            trail.append(outcome.label)
            if outcome.ok or not outcome.retryable or attempt == wiring.retry.tries:
                break
            pause = wiring.retry.pause(attempt, outcome.retry_after, wiring.random())
            log.info(
                "notify channel %s: try %d failed (%s), next in %.1f s",
                self._channel,
                attempt,
                outcome.label,
                pause,
            )
            await wiring.sleep(pause)
        error = None
        if not outcome.ok:
            error = outcome.error or outcome.label
        return Delivery(
            channel=self._channel,
            ok=outcome.ok,
            attempts=len(trail),
            status=outcome.status,
            error=error,
            at=wiring.clock(),
            trail=tuple(trail),
        )

    async def _once(self, body: bytes, headers: Mapping[str, str]) -> _Outcome:
        timeout = self._wiring.timeout
        try:
            async with asyncio.timeout(timeout):
                async with self._open().post(
                    self._url, data=body, headers=dict(headers), allow_redirects=False
                ) as response:
                    status = response.status
                    if 200 <= status < 300:
                        return _Outcome(status)
                    wait = retry_after(response.headers.get("Retry-After"), self._wiring.clock())
                    excerpt = await _read_capped(response.content, READ_CAP)
        except TimeoutError:
            return _Outcome(None, f"no answer within {timeout:g} s", retryable=True)
        except aiohttp.ClientConnectionError as exc:
            return _Outcome(None, f"connection failed ({type(exc).__name__})", retryable=True)
        except (aiohttp.ClientError, ValueError) as exc:  # ValueError: an unusable URL
            return _Outcome(None, f"request failed ({type(exc).__name__})")
        error = f"HTTP {status}"
        if 300 <= status < 400:
            error += " (redirects are not followed)"
        text = " ".join(excerpt.decode("utf-8", "replace").split())[:EXCERPT]
        if text:
            error += f": {self._redact(text)}"
        return _Outcome(
            status, error, retryable=self._wiring.retry.retryable(status), retry_after=wait
        )

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._wiring.session_factory()
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read_capped(stream: aiohttp.StreamReader, cap: int) -> bytes:
    """At most ``cap`` bytes of a body; the rest is never read."""
    chunks: list[bytes] = []
    size = 0
    while size < cap:
        chunk = await stream.read(cap - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
