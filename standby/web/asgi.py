"""Small raw-ASGI pieces for the hot path: read a bounded body, send a whole response.

The OpenAI wire handlers use these directly instead of a framework's request/response
objects: on the path every request takes, each avoided allocation is throughput.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from standby.errors import BodyTooLarge, InvalidRequest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON = b"application/json"
log = logging.getLogger("standby.web")


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes (413)."""
    length = header(scope, b"content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise InvalidRequest("Invalid Content-Length header.") from None
        if declared > limit:
            raise BodyTooLarge(
                f"Request body of {declared} bytes exceeds the limit of {limit} bytes."
            )
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise BodyTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        return body
    parts = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        part = message.get("body", b"")
        size += len(part)
        if size > limit:
            raise BodyTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        parts.append(part)
        if not message.get("more_body"):
            return b"".join(parts)


async def respond(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = JSON,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def hash_key(key: str) -> str:
    """The form a client key takes in a plan: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def standby_headers(provider: str, model: str, attempts: int, route: str | None = None) -> Headers:
    """Who answered: the headers every wire puts on its answers."""
    headers = [
        (b"x-standby-provider", provider.encode()),
        (b"x-standby-model", model.encode()),
        (b"x-standby-attempts", str(attempts).encode()),
    ]
    if route is not None:
        headers.append((b"x-standby-route", route.encode()))
    return headers


SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def stream_response(
    send: Send,
    headers: Headers,
    events: AsyncGenerator[bytes, None],
    *,
    translate: Callable[[bytes], bytes] | None = None,
    prelude: bytes = b"",
    receive: Receive | None = None,
) -> None:
    """Send a 200 event stream: ``prelude``, then each of ``events`` (translated).

    Once the client is gone uvicorn drops what is sent; the stream engine still finishes
    the answer upstream and journals it whole (F21), so a disconnect is only logged.
    """
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers})
    try:
        if prelude:
            await send({"type": "http.response.body", "body": prelude, "more_body": True})
        async for data in events:
            body = translate(data) if translate is not None else data
            await send({"type": "http.response.body", "body": body, "more_body": True})
    except OSError:
        log.info("a client left its stream")
    finally:
        await events.aclose()
    await send({"type": "http.response.body", "body": b"", "more_body": False})
