"""Errors rendered in OpenAI's JSON error shape, with the right status codes."""

from __future__ import annotations

from typing import Any

import orjson

from standby.errors import ClientError, Exhausted, StandbyError, UpstreamStatus


def error_body(message: str, *, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type, "param": param,
                                   "code": code}})


def render(error: StandbyError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """``(status, body, extra headers)`` for an error that ends a request."""
    if isinstance(error, ClientError):
        return error.status, error_body(error.message, type=error.type, param=error.param,
                                        code=error.code), []
    if isinstance(error, Exhausted):
        seconds = max(1, round(error.retry_after))
        body = error_body(f"Every provider for this model is unavailable right now "
                          f"({error.message}). Please retry after {seconds}s.",
                          type="server_error", code="upstream_unavailable")
        return 503, body, [(b"retry-after", str(seconds).encode())]
    if isinstance(error, UpstreamStatus):
        # a final provider verdict (content policy, invalid request): the provider's reason
        upstream: dict[str, Any] | None = error.body
        if upstream and isinstance(upstream.get("error"), dict):
            return error.status, orjson.dumps(upstream), []
        return error.status, error_body(error.message, code=error.kind), []
    return 500, error_body(str(error), type="server_error"), []
