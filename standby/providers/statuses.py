"""Map a provider's HTTP error reply to one ``UpstreamStatus`` with an ``UpstreamKind``.

Pure functions over status, parsed body and headers, shared by every OpenAI-shaped
adapter.  The attempt loop decides what to do with each kind (``routing.outcomes``).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

from standby.errors import UpstreamKind, UpstreamStatus

_CONTEXT_MARKERS = (
    "context_length",
    "context length",
    "maximum context",
    "too many tokens",
    "prompt is too long",
    "reduce the length",
    "exceeds the maximum number of tokens",
)  # Gemini's wording
_POLICY_MARKERS = (
    "content_policy",
    "content_filter",
    "content management policy",
    "safety system",
    "flagged",
    "usage policy",
    "usage policies",
)
# Gemini answers 400 for a bad or expired key and FAILED_PRECONDITION for an account that
# cannot use the API (billing, region): key problems, so fail over and alert (F18)
_AUTH_MARKERS = ("api key not valid", "api key expired", "api_key_invalid", "failed_precondition")
_AUTH_STATUSES = {401, 402, 403}
_UNAVAILABLE = {503, 529}


def error_fields(body: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """``(message, code, type)`` of an OpenAI-style ``{"error": {...}}`` body; Gemini's
    (Google's) ``status`` (``RESOURCE_EXHAUSTED``, ``INVALID_ARGUMENT`` …) is its type."""
    if not isinstance(body, Mapping):
        return "", "", ""
    err = body.get("error")
    if isinstance(err, Mapping):
        return (
            str(err.get("message") or ""),
            str(err.get("code") or ""),
            str(err.get("type") or err.get("status") or ""),
        )
    if isinstance(err, str):
        return err, "", ""
    return str(body.get("message") or ""), "", ""


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a provider asked us to wait, from ``retry-after-ms`` or ``retry-after``."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def classify(
    status: int, body: Mapping[str, Any] | None, headers: Mapping[str, str], *, target: str = ""
) -> UpstreamStatus:
    """One error reply → ``UpstreamStatus`` whose ``kind`` drives retry/failover/final."""
    message, code, etype = error_fields(body)
    text = f"{message} {code} {etype}".lower()
    kind: UpstreamKind
    if status == 429:
        kind = UpstreamKind.RATE_LIMITED
        if code == "insufficient_quota" or "spend_limit" in str(body or ""):
            # an exhausted account or spend limit is a key problem, not a storm
            kind = UpstreamKind.AUTH
    elif status in _AUTH_STATUSES or (status == 400 and any(m in text for m in _AUTH_MARKERS)):
        kind = UpstreamKind.AUTH
    elif status in _UNAVAILABLE:
        kind = UpstreamKind.UNAVAILABLE
    elif status >= 500 or status == 408:
        kind = UpstreamKind.SERVER_ERROR
    elif any(marker in text for marker in _CONTEXT_MARKERS):
        kind = UpstreamKind.CONTEXT_LENGTH
    elif any(marker in text for marker in _POLICY_MARKERS):
        kind = UpstreamKind.CONTENT_POLICY
    elif status == 404:
        kind = UpstreamKind.NOT_FOUND
    else:
        kind = UpstreamKind.INVALID_REQUEST
    summary = message or f"HTTP {status}"
    return UpstreamStatus(
        f"{target or 'provider'} answered {status}: {summary}"[:500],
        status=status,
        kind=kind,
        body=dict(body) if isinstance(body, Mapping) else None,
        retry_after=retry_after_seconds(headers) if status in (429, 503, 529) else None,
        target=target,
        limits=rate_limits(headers) if status == 429 else (None, None),
    )


# the headers naming a provider's limits per minute (requests, tokens): OpenAI's (and the
# many OpenAI-compatible APIs that copy them), then Anthropic's
_LIMIT_HEADERS = (
    ("x-ratelimit-limit-requests", "x-ratelimit-limit-tokens"),
    ("anthropic-ratelimit-requests-limit", "anthropic-ratelimit-tokens-limit"),
)


def rate_limits(headers: Mapping[str, str]) -> tuple[int | None, int | None]:
    """The requests and tokens per minute a provider's headers say it allows."""
    for requests, tokens in _LIMIT_HEADERS:
        found = (_positive(headers.get(requests)), _positive(headers.get(tokens)))
        if found != (None, None):
            return found
    return None, None


def _positive(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number > 0 else None
