"""Fault records and the per-request fault selection of the simulated provider.

A ``Fault`` is set on the provider (``set_fault`` or ``POST /_sim/fault``) or given for
one request by headers (``x-sim-fault: <kind>`` with optional ``x-sim-status``,
``x-sim-after``, ``x-sim-delay``, ``x-sim-retry-after``). ``FaultState.select`` picks
the fault of each chat or embeddings request; a header override neither consumes nor
changes the fault that is set. A fault with ``times=N`` applies to the next N requests
(header-overridden ones excepted), then the provider is back to ``ok``.

Recorded label: each request is recorded with the kind that applied to it. Conditional
kinds are recorded as ``ok`` when they did not fire: ``flap`` (a seeded draw per
request), ``reject_prefill`` (only when the last message is the assistant's),
``tool_call_cut`` (only on a streamed tool call), ``no_done`` and ``no_done_no_finish``
(only on streams). When a ``flap`` fires, the request gets an ``error`` reply with
``status`` (default 503).

The error replies themselves (``error_reply``) are built here too, in OpenAI's shape.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from typing import Any

import orjson

KINDS: frozenset[str] = frozenset({
    "ok", "latency", "rate_limit", "error", "reset", "silent", "slow_first_token",
    "cut_stream", "stall", "malformed_event", "no_done", "no_done_no_finish",
    "context_length", "content_policy", "reject_prefill", "flap", "auth",
    "error_body_200", "html", "tool_call_cut",
})  # fmt: skip
# Kinds answered at once with an error status or body, before any answer is planned.
ERROR_KINDS: frozenset[str] = frozenset({
    "rate_limit", "error", "context_length", "content_policy", "reject_prefill", "auth",
    "error_body_200", "html",
})  # fmt: skip
_STREAM_ONLY = frozenset({"no_done", "no_done_no_finish", "tool_call_cut"})
_HEADERS = {"x-sim-status": "status", "x-sim-after": "after", "x-sim-delay": "delay",
            "x-sim-retry-after": "retry_after"}  # fmt: skip


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
            raise ValueError("times must be at least 1 (or None for until cleared)")
        if self.after < 0 or self.delay < 0 or not 0.0 <= self.fraction <= 1.0:
            raise ValueError("after and delay must be >= 0 and fraction within [0, 1]")

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        """Build from a JSON object of field values; raises ``ValueError`` when invalid."""
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            raise ValueError('a fault is a JSON object with a string "kind"')
        known = {f.name: f for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            default = known[name].default
            values[name] = value if value is None else _coerce(name, value, default)
        return cls(**values)

    @classmethod
    def from_headers(cls, headers: Any) -> Fault | None:
        """The one-request override carried by ``x-sim-*`` headers, if any."""
        kind = headers.get("x-sim-fault")
        if not kind:
            return None
        values: dict[str, Any] = {"kind": kind.strip()}
        for header, name in _HEADERS.items():
            if header in headers:
                values[name] = headers[header]
        return cls.from_json(values)

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


def _coerce(name: str, value: Any, default: Any) -> Any:
    if name == "kind":
        return value
    try:
        if name == "headers_early":
            return value if isinstance(value, bool) else str(value).lower() in {"1", "true"}
        if name in {"retry_after"} or isinstance(default, float):
            return float(value)
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"fault field {name!r}: bad value {value!r}") from exc


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
        self._fault = OK
        self._left: int | None = None
        self._rng = random.Random(OK.seed)

    def __repr__(self) -> str:
        left = "until cleared" if self._left is None else f"{self._left} left"
        return f"<FaultState {self._fault.kind} ({left})>"

    @property
    def fault(self) -> Fault:
        """The fault set now (``OK`` when none)."""
        return self._fault

    @property
    def left(self) -> int | None:
        """Requests the fault still applies to; ``None`` means until cleared."""
        return self._left

    def set(self, fault: Fault) -> None:
        """Apply ``fault`` from the next request on; restarts the flap draws."""
        self._fault, self._left = fault, fault.times
        self._rng = random.Random(fault.seed)

    def clear(self) -> None:
        """Back to ``ok``."""
        self.set(OK)

    def select(self, shape: Shape, override: Fault | None = None) -> Selection:
        """The fault of the next request: the override, or the one set (counted down)."""
        fault = override
        if fault is None:
            fault = self._fault
            if self._left is not None:
                self._left -= 1
                if self._left <= 0:
                    self.clear()
        return self._resolve(fault, shape)

    def _resolve(self, fault: Fault, shape: Shape) -> Selection:
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


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A complete error answer: status, body, content type and extra headers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def error_json(message: str, type_: str, code: str | None = None, param: str | None = None) -> bytes:
    """An OpenAI error object."""
    error = {"message": message, "type": type_, "param": param, "code": code}
    return orjson.dumps({"error": error})


PREFILL_MESSAGE = (
    "This model does not support assistant message prefill: a final assistant message "
    "is not supported, the conversation must end with a user message."
)
_SERVER_MESSAGES = {
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later.",
}
_HTML = (
    "<!DOCTYPE html><html><head><title>{status} | sim-cdn</title></head><body>"
    "<h1>Error {status}</h1><p>The origin web server is not answering.</p>"
    "<hr><p>sim-cdn</p></body></html>"
)


def error_reply(fault: Fault, *, stream: bool = False, prompt: int = 0) -> ErrorReply:
    """The reply of an error kind (``ERROR_KINDS``)."""
    kind = fault.kind
    retry = () if fault.retry_after is None else (("Retry-After", f"{fault.retry_after:g}"),)
    if kind == "rate_limit":
        body = error_json("Rate limit reached for requests (simulated). Please try again "
                          "later.", "rate_limit_error", "rate_limit_exceeded")  # fmt: skip
        return ErrorReply(fault.status or 429, body, headers=retry)
    if kind == "error":
        status = fault.status or 500
        message = _SERVER_MESSAGES.get(status, "The server had an error while processing "
                                       "your request. Sorry about that!")  # fmt: skip
        return ErrorReply(status, error_json(message, "server_error"), headers=retry)
    if kind == "context_length":
        message = (f"This model's maximum context length is 8192 tokens. However, your "
                   f"messages resulted in {max(prompt, 8193)} tokens. Please reduce the "
                   "length of the messages.")  # fmt: skip
        body = error_json(message, "invalid_request_error", "context_length_exceeded", "messages")
        return ErrorReply(fault.status or 400, body)
    if kind == "content_policy":
        message = ("Your request was rejected as a result of our safety system. Your prompt "
                   "may contain text that is not allowed by our safety system.")  # fmt: skip
        body = error_json(message, "invalid_request_error", "content_policy_violation")
        return ErrorReply(fault.status or 400, body)
    if kind == "reject_prefill":
        body = error_json(PREFILL_MESSAGE, "invalid_request_error", None, "messages")
        return ErrorReply(fault.status or 400, body)
    if kind == "auth":
        status = fault.status or 401
        if status in (401, 403):
            message = "Incorrect API key provided: sk-sim***. You can find your API key at your provider."
            body = error_json(message, "invalid_request_error", "invalid_api_key")
        else:
            message = "You exceeded your current quota, please check your plan and billing details."
            body = error_json(message, "insufficient_quota", "insufficient_quota")
        return ErrorReply(status, body)
    if kind == "error_body_200":
        body = error_json("The server had an error while processing your request.", "server_error")
        if stream:
            return ErrorReply(200, b"data: " + body + b"\n\n", "text/event-stream")
        return ErrorReply(200, body)
    if kind == "html":
        status = fault.status or 200
        return ErrorReply(status, _HTML.format(status=status).encode(), "text/html")
    raise ValueError(f"{kind!r} is not an error kind")
