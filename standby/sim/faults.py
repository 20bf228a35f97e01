"""Fault records, the per-request fault selection, and how each fault plays on the wire.

A ``Fault`` is set on the provider (``set_fault`` or ``POST /_sim/fault``) or given for
one request by headers (``x-sim-fault: <kind>`` with optional ``x-sim-status``,
``x-sim-after``, ``x-sim-delay``, ``x-sim-retry-after``). ``FaultState.select`` picks
the fault of each chat or embeddings request; a header override neither consumes nor
changes the fault that is set. A fault with ``times=N`` applies to the next N requests
(header-overridden ones excepted), then the provider is back to ``ok``.

Each request is recorded with the kind that applied to it. Conditional kinds are
recorded as ``ok`` when they did not fire: ``flap`` (a seeded draw per request; when it
fires the request gets an ``error`` reply with ``status``, default 503),
``reject_prefill`` (only when the last message is the assistant's), ``tool_call_cut``
(only on a streamed tool call), ``no_done`` and ``no_done_no_finish`` (streams only).

Without a stream, ``cut_stream`` sends the headers with the full Content-Length and half
the body, then resets; ``stall`` pauses after half the body; ``malformed_event`` sends an
invalid JSON body. Held connections (``silent``; ``stall`` with ``delay=0``) wait for a
release and then go on normally; a stall with a delay also ends early on release.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import asdict, dataclass, fields
from typing import Any

from aiohttp import web

from standby.sim.answers import Events

KINDS: frozenset[str] = frozenset(
    {
        "ok",
        "latency",
        "rate_limit",
        "error",
        "reset",
        "silent",
        "slow_first_token",
        "cut_stream",
        "stall",
        "malformed_event",
        "no_done",
        "no_done_no_finish",
        "context_length",
        "content_policy",
        "reject_prefill",
        "flap",
        "auth",
        "error_body_200",
        "html",
        "tool_call_cut",
    }
)
_STREAM_ONLY = frozenset({"no_done", "no_done_no_finish", "tool_call_cut"})
_CUT_KINDS = frozenset({"cut_stream", "stall", "malformed_event", "tool_call_cut"})
_HEADERS = {
    "x-sim-status": "status",
    "x-sim-after": "after",
    "x-sim-delay": "delay",
    "x-sim-retry-after": "retry_after",
}
_MALFORMED_EVENT = b"data: {not json\n\n"
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault of the catalogue and its parameters."""

    kind: str
    times: int | None = None  # the next N requests, then "ok"; None: until cleared
    status: int | None = None
    retry_after: float | None = None
    after: int = 3  # content chunks sent before a cut, stall or malformed event
    delay: float = 0.0  # seconds, for slow_first_token, stall (0: hold) and latency
    fraction: float = 0.5  # flap: probability that a request fails
    seed: int = 1  # flap: seed of the draws
    headers_early: bool = False  # slow_first_token: send the 200 headers before the delay

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {sorted(KINDS)}")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1 (or None: until cleared)")
        if self.after < 0 or self.delay < 0 or not 0.0 <= self.fraction <= 1.0:
            raise ValueError("after and delay must be >= 0 and fraction within [0, 1]")

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        """Build from a JSON object of field values; raises ``ValueError`` when invalid."""
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            raise ValueError('a fault is a JSON object with a string "kind"')
        types = {f.name: f.type for f in fields(cls)}
        if unknown := set(data) - set(types):
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        try:
            return cls(**{k: _coerce(v, str(types[k])) for k, v in data.items()})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad fault: {exc}") from exc

    @classmethod
    def from_headers(cls, headers: Any) -> Fault | None:
        """The one-request override carried by ``x-sim-*`` headers, if any."""
        kind = headers.get("x-sim-fault")
        if not kind:
            return None
        values = {name: headers[h] for h, name in _HEADERS.items() if h in headers}
        return cls.from_json({"kind": kind.strip(), **values})

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


def _coerce(value: Any, type_: str) -> Any:
    if value is None or type_ == "str":
        return value
    if type_ == "bool":
        return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes"}
    return float(value) if "float" in type_ else int(value)


OK = Fault("ok")


@dataclass(frozen=True, slots=True)
class Shape:
    """What a request is, as far as conditional faults care."""

    stream: bool = False
    tools: bool = False  # the answer is a tool call
    prefill: bool = False  # the last message is the assistant's


@dataclass(frozen=True, slots=True)
class Selection:
    """The fault that applies to one request and the label it is recorded under."""

    fault: Fault
    label: str


class FaultState:
    """The fault that is set, how many requests it has left, and the flap draws."""

    def __init__(self) -> None:
        self.fault = OK
        self.left: int | None = None  # requests the fault still applies to; None: all
        self._rng = random.Random(OK.seed)

    def __repr__(self) -> str:
        left = "until cleared" if self.left is None else f"{self.left} left"
        return f"<FaultState {self.fault.kind} ({left})>"

    def set(self, fault: Fault) -> None:
        """Apply ``fault`` from the next request on; restarts the flap draws."""
        self.fault, self.left = fault, fault.times
        self._rng = random.Random(fault.seed)

    def clear(self) -> None:
        """Back to ``ok``."""
        self.set(OK)

    def select(self, shape: Shape, override: Fault | None = None) -> Selection:
        """The fault of the next request: the override, or the one set (counted down)."""
        fault = override or self.fault
        if override is None and self.left is not None:
            self.left -= 1
            if self.left <= 0:
                self.clear()
        kind = fault.kind
        if kind == "flap":
            if self._rng.random() >= fault.fraction:
                return Selection(OK, "ok")
            failed = Fault("error", status=fault.status or 503, retry_after=fault.retry_after)
            return Selection(failed, "flap")
        fires = (
            (kind != "reject_prefill" or shape.prefill)
            and (kind not in _STREAM_ONLY or shape.stream)
            and (kind != "tool_call_cut" or shape.tools)
        )
        return Selection(fault, kind) if fires else Selection(OK, "ok")


class Holds:
    """Connections held by ``silent`` and ``stall``: released together, aborted on stop."""

    def __init__(self) -> None:
        self._gate, self._added = asyncio.Event(), asyncio.Event()
        self._held: set[asyncio.Transport] = set()
        self.stopping = False

    def __len__(self) -> int:
        return len(self._held)

    async def hold(self, request: web.BaseRequest, seconds: float = 0.0) -> bool:
        """Hold for ``seconds`` (0: until released); False, connection aborted, on stop."""
        transport, gate = request.transport, self._gate
        if transport is None or self.stopping:
            return False
        self._held.add(transport)
        self._added.set()
        self._added = asyncio.Event()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gate.wait(), seconds or None)
        finally:
            self._held.discard(transport)
        if self.stopping:
            transport.abort()
        return not self.stopping

    async def wait(self, count: int) -> None:
        """Return once at least ``count`` connections are held."""
        while len(self._held) < count:
            await self._added.wait()

    def release(self) -> int:
        """Let every held connection go on; returns how many there were."""
        held = len(self._held)
        self._gate.set()
        self._gate = asyncio.Event()
        return held

    def stop(self) -> None:
        """Abort every held connection, and any held from now on."""
        self.stopping = True
        for transport in list(self._held):
            transport.abort()
        self.release()


async def before_answer(request: web.BaseRequest, fault: Fault, holds: Holds, stream: bool) -> bool:
    """Play the faults that act before any answer; False when the connection is gone."""
    kind = fault.kind
    if kind == "latency" or (kind == "slow_first_token" and not (stream and fault.headers_early)):
        await asyncio.sleep(fault.delay)
    elif kind == "reset":
        abort(request)
        return False
    elif kind == "silent":
        return await holds.hold(request)
    return True


async def send_body(
    request: web.BaseRequest, payload: bytes, fault: Fault, holds: Holds
) -> web.StreamResponse:
    """A non-streamed JSON answer, broken as ``fault`` says."""
    if fault.kind == "malformed_event":
        payload = b"{not json"
    if fault.kind not in ("cut_stream", "stall"):
        return web.Response(body=payload, content_type="application/json")
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.content_length = len(payload)
    with contextlib.suppress(ConnectionError):
        await resp.prepare(request)
        await resp.write(payload[: len(payload) // 2])
        if fault.kind == "cut_stream" or not await holds.hold(request, fault.delay):
            await flush_and_abort(request)
            return resp
        await resp.write(payload[len(payload) // 2 :])
        await resp.write_eof()
    return resp


async def send_stream(
    request: web.BaseRequest, events: Events, fault: Fault, holds: Holds, chunk_delay: float
) -> web.StreamResponse:
    """An SSE stream, with the fault's cut, stall, bad event or missing end."""
    kind, body = fault.kind, events.body
    cut = len(body)
    if kind in _CUT_KINDS:  # a tool call is always cut inside its arguments
        cut = min(fault.after, len(body) - 1 if kind == "tool_call_cut" else len(body))
    tail = events.finish + events.usage + (b"" if kind == "no_done" else events.done)
    resp = web.StreamResponse(headers=_SSE_HEADERS)

    async def write(head: bytes, pieces: list[bytes], end: bytes | None = None) -> None:
        if chunk_delay > 0:
            await resp.write(head)
            for piece in pieces:
                await asyncio.sleep(chunk_delay)
                await resp.write(piece)
            head, pieces = b"", []
        data = head + b"".join(pieces)  # one write (with the end): the fast path
        await (resp.write(data) if end is None else resp.write_eof(data + end))

    with contextlib.suppress(ConnectionError):
        await resp.prepare(request)
        if kind == "slow_first_token" and fault.headers_early:  # the headers are out
            await asyncio.sleep(fault.delay)
        head = events.head
        if kind in _CUT_KINDS:
            await write(head, body[:cut])
            if kind in ("cut_stream", "tool_call_cut"):
                await flush_and_abort(request)
                return resp
            if kind == "stall" and not await holds.hold(request, fault.delay):
                return resp
            head, body = _MALFORMED_EVENT if kind == "malformed_event" else b"", body[cut:]
        await write(head, body, b"" if kind == "no_done_no_finish" else tail)
    return resp


def abort(request: web.BaseRequest) -> None:
    """Reset the connection: the client sees no (more) response."""
    if request.transport is not None:
        request.transport.abort()


async def flush_and_abort(request: web.BaseRequest) -> None:
    """Abort once what was written has left, so the client reads it before the reset."""
    transport = request.transport
    for _ in range(400):  # at most 2 s
        if transport is None or not transport.get_write_buffer_size():
            break
        await asyncio.sleep(0.005)
    abort(request)
