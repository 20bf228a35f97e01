"""Errors rendered in OpenAI's JSON error shape, with the right status codes."""

from __future__ import annotations

import orjson

from standby.errors import ClientError, Exhausted, StandbyError, UpstreamStatus
from standby.providers.statuses import error_fields


def error_body(
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type, "param": param, "code": code}})


def render(error: StandbyError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """``(status, body, extra headers)`` for an error that ends a request."""
    if isinstance(error, ClientError):
        return (
            error.status,
            error_body(error.message, type=error.type, param=error.param, code=error.code),
            [],
        )
    if isinstance(error, Exhausted):
        seconds = max(1, round(error.retry_after))
        body = error_body(
            f"Every provider for this model is unavailable right now "
            f"({error.message}). Please retry after {seconds}s.",
            type="server_error",
            code="upstream_unavailable",
        )
        return 503, body, [(b"retry-after", str(seconds).encode())]
    if isinstance(error, UpstreamStatus):
        # a final provider verdict (content policy, invalid request): the provider's reason,
        # in OpenAI's shape whatever the vendor (Anthropic and Gemini bodies differ)
        message, code, etype = error_fields(error.body)
        upstream = error.body.get("error") if isinstance(error.body, dict) else None
        param = upstream.get("param") if isinstance(upstream, dict) else None
        return (
            error.status,
            error_body(
                message or error.message,
                type=etype or "invalid_request_error",
                param=param,
                code=code or error.kind,
            ),
            [],
        )
    return 500, error_body(str(error), type="server_error"), []
