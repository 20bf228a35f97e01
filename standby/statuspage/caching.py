"""One way for every public answer of the status page to be cheap to ask again: a short
``Cache-Control`` and an ETag, so a flood of visitors during an outage (and their
``If-None-Match``) mostly costs a hash and a 304."""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response


def cached(
    request: Request,
    body: bytes,
    media_type: str,
    *,
    max_age: int,
    identity: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """``body`` with caching headers, or a 304 when the visitor has it already.

    ``identity`` is what the ETag is computed from when it is not the body itself (a
    document whose timestamp moves on every call but whose content does not).
    """
    etag = '"' + hashlib.sha256(body if identity is None else identity).hexdigest()[:32] + '"'
    found = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}", **(headers or {})}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=found)
    return Response(body, media_type=media_type, headers=found)
