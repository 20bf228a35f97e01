"""One chat completion request, timed from its scheduled send time and checked.

Times are ``time.perf_counter()`` seconds; results are in milliseconds from ``scheduled``
(the open-loop generator's planned send time, so a late send counts as latency).

Outcomes: ``ok``, ``http_<status>``, ``timeout``, ``conn_error``, ``disconnected`` (the
connection broke before an answer), and for streams ``broken`` (HTTP 200, then the
transport failed), ``error_event`` (an in-band ``{"error": …}`` event), ``no_done`` (ended
without ``[DONE]``) and ``content_mismatch`` (complete, but not the expected text).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from bench.stack import MODEL

MESSAGES = [{"role": "user", "content": "Say something reassuring."}]
CHAT_BODY = orjson.dumps({"model": MODEL, "messages": MESSAGES})
STREAM_BODY = orjson.dumps({"model": MODEL, "messages": MESSAGES, "stream": True})
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench-client"}


@dataclass(slots=True)
class Result:
    """What one request did; times in ms from its scheduled send time."""

    outcome: str
    latency_ms: float
    ttfb_ms: float | None = None
    ttft_ms: float | None = None
    served_by: str | None = None
    text: str = ""


@dataclass
class StreamCounters:
    """Live counts across many streams (the memory phase watches them)."""

    started: int = 0
    opened: int = 0  # response headers received
    first_token: int = 0
    finished: int = 0
    open_now: int = 0  # headers received and not yet finished
    peak_open: int = 0


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0


def _failure(exc: BaseException, got_headers: bool) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "conn_error"
    return "broken" if got_headers else "disconnected"


async def chat(session: aiohttp.ClientSession, url: str, scheduled: float) -> Result:
    """A non-streaming chat completion; ok = HTTP 200 with a JSON body with choices."""
    try:
        async with session.post(url, data=CHAT_BODY, headers=HEADERS) as resp:
            raw = await resp.read()
            if resp.status != 200:
                return Result(f"http_{resp.status}", _ms(scheduled))
        latency = _ms(scheduled)
        body = orjson.loads(raw)
        if not body.get("choices"):
            return Result("content_mismatch", latency)
        return Result("ok", latency, served_by=body.get("system_fingerprint"))
    except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as exc:
        return Result(_failure(exc, False), _ms(scheduled))


async def stream(
    session: aiohttp.ClientSession,
    url: str,
    scheduled: float,
    expected: str | None = None,
    counters: StreamCounters | None = None,
) -> Result:
    """A streaming chat completion: TTFB, TTFT (first non-empty ``delta.content``), text."""
    counts = counters if counters is not None else StreamCounters()
    counts.started += 1
    ttfb: float | None = None
    ttft: float | None = None
    served: str | None = None
    pieces: list[str] = []
    done = error_event = False
    opened = False
    try:
        async with session.post(url, data=STREAM_BODY, headers=HEADERS) as resp:
            ttfb = _ms(scheduled)
            if resp.status != 200:
                await resp.read()
                return Result(f"http_{resp.status}", _ms(scheduled), ttfb)
            opened = True
            counts.opened += 1
            counts.open_now += 1
            counts.peak_open = max(counts.peak_open, counts.open_now)
            async for line in resp.content:
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    done = True
                    continue
                event: dict[str, Any] = orjson.loads(payload)
                if "error" in event:
                    error_event = True
                    continue
                served = served or event.get("system_fingerprint")
                for choice in event.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        if ttft is None:
                            ttft = _ms(scheduled)
                            counts.first_token += 1
                        pieces.append(content)
        outcome = _stream_outcome(done, error_event, "".join(pieces), expected)
        return Result(outcome, _ms(scheduled), ttfb, ttft, served, "".join(pieces))
    except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as exc:
        return Result(_failure(exc, ttfb is not None), _ms(scheduled), ttfb, ttft, served)
    finally:
        if opened:
            counts.open_now -= 1
        counts.finished += 1


def _stream_outcome(done: bool, error_event: bool, text: str, expected: str | None) -> str:
    if error_event:
        return "error_event"
    if not done:
        return "no_done"
    if expected is not None and text != expected:
        return "content_mismatch"
    return "ok"


def tally(results: list[Result]) -> dict[str, int]:
    """Outcome → count."""
    counts: dict[str, int] = {}
    for result in results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    return dict(sorted(counts.items()))


def new_session(limit: int, timeout_s: float) -> aiohttp.ClientSession:
    """A client session with a connection pool of ``limit`` (0 = unlimited), keep-alive."""
    connector = aiohttp.TCPConnector(
        limit=limit,
        limit_per_host=0,
        force_close=False,
        enable_cleanup_closed=False,
        ttl_dns_cache=None,
    )
    return aiohttp.ClientSession(
        connector=connector,
        skip_auto_headers=("User-Agent",),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    )
