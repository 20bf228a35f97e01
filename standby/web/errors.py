"""The error that ends a request: what it says (``problem``), and OpenAI's JSON shape for it.

``problem`` decides the status, message and code once for every wire; ``render`` puts it
in OpenAI's error shape.  A wire with its own shape (Anthropic's) renders the same
``Problem`` its own way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import orjson

from standby.errors import (
    ClientError,
    Exhausted,
    Overloaded,
    RateLimited,
    StandbyError,
    Throttled,
    UpstreamStatus,
)
from standby.providers.statuses import error_fields

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Problem:
    """What an error that ends a request tells the caller, in no vendor's shape yet."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()


def error_body(
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type, "param": param, "code": code}})


def problem(error: StandbyError) -> Problem:
    """The status, message, type and code of an error that ends a request."""
    if isinstance(error, RateLimited):
        return Problem(429, error.message, error.type, None, error.code, error.headers)
    if isinstance(error, ClientError):
        return Problem(error.status, error.message, error.type, error.param, error.code)
    if isinstance(error, Throttled):  # before Exhausted, which it is a kind of
        seconds = max(1, math.ceil(error.retry_after))
        return Problem(
            429,
            "The providers that could answer this model have no capacity left for your "
            f"priority this minute ({error.message}). Please retry after {seconds}s.",
            "requests",
            code="rate_limit_exceeded",
            headers=((b"retry-after", str(seconds).encode()),),
        )
    if isinstance(error, Overloaded):  # before Exhausted, which it is a kind of
        seconds = max(1, round(error.retry_after))
        return Problem(
            503,
            "Standby's own connection limit is reached: this gateway is overloaded, not the "
            f"providers ({error.message}). Please retry after {seconds}s.",
            "server_error",
            code="gateway_overloaded",
            headers=((b"retry-after", str(seconds).encode()),),
        )
    if isinstance(error, Exhausted):
        seconds = max(1, round(error.retry_after))
        return Problem(
            503,
            f"Every provider for this model is unavailable right now "
            f"({error.message}). Please retry after {seconds}s.",
            "server_error",
            code="upstream_unavailable",
            headers=((b"retry-after", str(seconds).encode()),),
        )
    if isinstance(error, UpstreamStatus):
        # a final provider verdict (content policy, invalid request): the provider's reason,
        # in OpenAI's shape whatever the vendor (Anthropic and Gemini bodies differ)
        message, code, etype = error_fields(error.body)
        upstream = error.body.get("error") if isinstance(error.body, dict) else None
        param = upstream.get("param") if isinstance(upstream, dict) else None
        return Problem(
            error.status,
            message or error.message,
            etype or "invalid_request_error",
            param,
            code or error.kind,
        )
    return Problem(500, str(error), "server_error")


def render(error: StandbyError) -> tuple[int, bytes, Headers]:
    """``(status, body, extra headers)`` in OpenAI's shape for an error that ends a request."""
    found = problem(error)
    body = error_body(found.message, type=found.type, param=found.param, code=found.code)
    return found.status, body, list(found.headers)
