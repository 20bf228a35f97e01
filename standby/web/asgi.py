"""Small raw-ASGI pieces for the hot path: read a bounded body, send a whole response.

The wires' request pipeline uses these directly instead of a framework's request/response
objects: on the path every request takes, each avoided allocation is throughput.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Protocol

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


def standby_headers(
    provider: str, model: str, attempts: int, route: str, request_id: str
) -> Headers:
    """Who answered: the headers every wire puts on its answers.

    ``x-request-id`` is the journal's id of the request (as OpenAI names its own), so a
    caller's report, the access log and the journal meet on one value.
    """
    return [
        (b"x-standby-provider", provider.encode()),
        (b"x-standby-model", model.encode()),
        (b"x-standby-attempts", str(attempts).encode()),
        (b"x-standby-route", route.encode()),
        (b"x-request-id", request_id.encode()),
    ]


def with_request_id(headers: Headers, request_id: str) -> Headers:
    """``headers`` plus ``x-request-id`` when the request got an id (an error reply)."""
    return [*headers, (b"x-request-id", request_id.encode())] if request_id else list(headers)


SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class Outgoing(Protocol):
    """What ``stream_response`` sends: one run of the stream engine (``StreamRun``)."""

    rid: str

    def events(self) -> AsyncGenerator[bytes, None]: ...

    def client_left(self) -> bool:
        """The client disconnected: True to stop ``events`` now, False to run them out."""
        ...

    @property
    def received_text(self) -> str:
        """The text handed to the client's connection so far."""
        ...

    async def aclose(self) -> None:
        """Free what the run holds, the upstream connection first (idempotent)."""
        ...


async def stream_response(
    send: Send,
    headers: Headers,
    outgoing: Outgoing,
    *,
    translate: Callable[[bytes], bytes] | None = None,
    prelude: bytes = b"",
    receive: Receive | None = None,
) -> None:
    """Send a 200 event stream: ``prelude``, then each of ``outgoing.events()`` (translated).

    With ``receive``, one task per stream watches it for ``http.disconnect``: uvicorn's
    answer once the connection is lost, after which it silently drops what is sent.  An
    ``OSError`` from ``send`` (other servers) means the same.  The client leaving is told
    to ``outgoing.client_left()``.  To stop, the task sending the stream is cancelled
    where it waits (for the upstream, or for the connection to drain), which closes the
    events and with them the upstream connection; otherwise the events run to their end
    and nothing more is sent.
    """
    events = outgoing.events()
    departure = _Departure(outgoing, receive)
    try:
        try:
            if receive is not None:
                # let the watcher look once before anything is sent: a client that left
                # while the first token was awaited has received nothing, not the start
                await asyncio.sleep(0)
            await send(
                {"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers}
            )
            if prelude:
                await send({"type": "http.response.body", "body": prelude, "more_body": True})
            async for data in events:
                if departure.left:
                    if departure.stopping:  # the cancellation was swallowed on its way
                        departure.cancelled_us()
                        break
                    continue  # on_disconnect: finish — the answer runs on, unsent
                body = translate(data) if translate is not None else data
                await send({"type": "http.response.body", "body": body, "more_body": True})
                departure.sent += len(body)
        except OSError:  # the server reports the connection gone (uvicorn does not)
            if not departure.leave():
                async for _ in events:
                    pass
    except asyncio.CancelledError:
        if not departure.cancelled_us():
            raise
    finally:
        departure.close()
        await events.aclose()
        await outgoing.aclose()  # the events may never have started
    if not departure.left:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _Departure:
    """Watches one stream's client for leaving: one task waiting on ``receive``."""

    __slots__ = ("_cancelled", "_sender", "_watcher", "left", "outgoing", "sent", "stopping")

    def __init__(self, outgoing: Outgoing, receive: Receive | None) -> None:
        self.outgoing = outgoing
        self.left = False
        self.stopping = False
        self.sent = 0  # body bytes handed to the connection, prelude aside
        self._cancelled = False  # the watcher cancelled the sender
        self._sender = asyncio.current_task()
        self._watcher = (
            asyncio.get_running_loop().create_task(self._watch(receive))
            if receive is not None
            else None
        )

    async def _watch(self, receive: Receive) -> None:
        # the body was read whole before the stream started: all there is left to
        # receive is the disconnect
        while (await receive())["type"] != "http.disconnect":
            pass
        if not self.left and self.leave() and self._sender is not None:
            self._cancelled = True
            self._sender.cancel()

    def leave(self) -> bool:
        """The client is gone: tell the stream (once); returns whether it stops."""
        if not self.left:
            self.left = True
            self.stopping = self.outgoing.client_left()
            log.info(
                "client left stream %s after %d bytes (%d characters of text); %s",
                self.outgoing.rid,
                self.sent,
                len(self.outgoing.received_text),
                "upstream cancelled" if self.stopping else "finishing upstream, unsent",
            )
        return self.stopping

    def cancelled_us(self) -> bool:
        """Whether a ``CancelledError`` is the watcher's doing alone (then it is spent)."""
        if not self._cancelled or self._sender is None:
            return False
        self._cancelled = False
        return self._sender.uncancel() == 0

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
