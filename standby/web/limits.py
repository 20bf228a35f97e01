"""Bounds on every client connection: head size, head and body deadlines.

uvicorn's httptools protocol enforces none of them.  Measured with uvicorn 0.55 and
httptools 0.9: a 100 MB header is buffered whole (the server's RSS grew by 113 MB), and a
connection that sends nothing, half a request head, or a body shorter than its
``Content-Length`` is held open for ever (uvicorn's h11 protocol caps the head, but has
no deadlines either).  ``limited_protocol(server)`` returns a subclass of
``HttpToolsProtocol`` that adds them, for ``uvicorn.Config(http=…)``:

* **head size** — the bytes of a request line and headers are counted *before* they are
  fed to the parser; a head that reaches ``server.max_header`` without ending is answered
  ``431`` and the connection closed, so no more than the cap is ever buffered.  The count
  is exact for a head that starts a read; a pipelined head that starts in the middle of a
  read is counted from the next read on (so it may reach the cap plus one read).
* **head deadline** — a new connection must send its whole first head within
  ``server.header_timeout``; a later request on a kept-alive connection within that time
  of its first byte (the wait before the first byte is uvicorn's ``timeout_keep_alive``).
* **body deadline** — the whole body must follow within ``server.body_timeout`` of the
  head's end (so a body shorter than its ``Content-Length`` times out).

An expired deadline closes the connection, after a ``408`` unless an answer is under way
on it (a new connection that sent nothing is closed without one).  Time spent while the
server itself has stopped reading (flow control, a pipelined request waiting its turn) is
not held against the client: the deadline is renewed instead.

Cost: a request whose head and body arrive in one read (nearly all of them) arms no timer
at all; a slow one arms one timer per phase (``bench/limits_bench.py --micro``: +1 µs per
request, next to the gateway's ~165 µs of CPU).  The connection cap is uvicorn's own
``limit_concurrency`` (``uvicorn_concurrency_limit``), lowered to what the open-files
limit can hold (``connection_cap``).

This relies on uvicorn's internals (``data_received``, the parser callbacks, ``cycle``,
``flow``, ``pipeline``): uvicorn is pinned to a minor version; re-run
``tests/web/test_limits.py`` on every upgrade.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from typing import Any, ClassVar, cast

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from standby.plan.model import Server
from standby.web.writes import CoalescingTransport

log = logging.getLogger("standby.limits")

# where a connection is in its current request
_IDLE = 0  # between requests: the next byte starts a head
_HEAD = 1  # the head has begun and not ended
_BODY = 2  # the head has ended, the body has not


def _closing_response(status: bytes, text: bytes) -> bytes:
    return b"".join(
        [
            b"HTTP/1.1 ",
            status,
            b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ",
            str(len(text)).encode(),
            b"\r\nconnection: close\r\n\r\n",
            text,
        ]
    )


HEAD_TOO_LARGE = _closing_response(
    b"431 Request Header Fields Too Large", b"Request header fields too large"
)
REQUEST_TIMEOUT = _closing_response(b"408 Request Timeout", b"Request timeout")


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head size cap and head and body deadlines."""

    max_header: ClassVar[int] = 64 * 1024
    header_timeout: ClassVar[float] = 10.0
    body_timeout: ClassVar[float] = 30.0
    # called before a connection's bytes go to its socket (the journal's flush)
    before_write: ClassVar[Callable[[], None] | None] = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._phase = _IDLE
        self._heads = 0  # heads begun on this connection
        self._head_bytes = 0  # bytes of the current head fed to the parser so far
        self._deadline: asyncio.TimerHandle | None = None  # of the current phase
        self._upgraded = False

    # the connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # one socket write per loop pass for the head and body of a response (web.writes)
        # (read from the class: a function kept there must not become a method)
        coalescing = CoalescingTransport(transport, self.loop, type(self).before_write)
        super().connection_made(cast(asyncio.Transport, coalescing))
        # a connection that never sends a whole head is closed, even if it sends nothing
        self._deadline = self.loop.call_later(self.header_timeout, self._expire)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._phase == _BODY:
            self._feed(data)
        elif self._head_bytes + len(data) < self.max_header:
            # the common case: a whole request, or a head that is still under the cap
            first = self._heads + (self._phase == _IDLE)
            if self._feed(data) and self._phase == _HEAD and self._heads == first:
                self._head_bytes += len(data)
        else:
            self._feed_capped(memoryview(data))
        if self._deadline is None:
            phase = self._phase
            if phase == _BODY:
                timeout = self.body_timeout
            elif phase == _HEAD or self.cycle is None or self.cycle.response_complete:
                # a head has begun; or bytes came that begin none (blank lines, the tail
                # of a body already answered) and uvicorn's keep-alive timer is gone
                timeout = self.header_timeout
            else:
                return  # a whole request came: the application has the next move
            if not self._upgraded and not self.transport.is_closing():
                self._deadline = self.loop.call_later(timeout, self._expire)

    def _feed_capped(self, data: memoryview) -> bool:
        """Feed a read that may take a head past the cap, one cap's worth at a time."""
        while data:
            if self._phase == _BODY:
                return self._feed(data)
            first = self._heads + (self._phase == _IDLE)
            piece = data[: self.max_header - self._head_bytes]
            data = data[len(piece) :]
            if not self._feed(piece):
                return False
            if self._phase == _HEAD and self._heads == first:
                self._head_bytes += len(piece)
                if self._head_bytes >= self.max_header:
                    self._refuse_head()
                    return False
        return True

    def _feed(self, data: bytes | memoryview) -> bool:
        """uvicorn's ``data_received`` body; ``False`` when the connection is done with HTTP."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return False
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self._upgraded = True  # the socket is the WebSocket protocol's now
                self._cancel_deadline()
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        return True

    # the parser's callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEAD
        self._heads += 1
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._phase = _BODY
        self._head_bytes = 0
        self._cancel_deadline()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._phase = _IDLE
        self._cancel_deadline()

    # limits

    def _refuse_head(self) -> None:
        log.debug("closing %s: request head over %d bytes", self.client, self.max_header)
        if self._answered():
            self.transport.write(HEAD_TOO_LARGE)
        self.transport.close()

    def _expire(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        phase = self._phase
        timeout = self.body_timeout if phase == _BODY else self.header_timeout
        if self.flow.read_paused:
            # we stopped reading, not the client: its time starts again when we read
            self._deadline = self.loop.call_later(timeout, self._expire)
            return
        log.debug(
            "closing %s: no whole %s within %gs",
            self.client,
            "body" if phase == _BODY else "head",
            timeout,
        )
        cycle = self.cycle
        if (
            phase == _BODY
            and cycle is not None
            and not cycle.response_started
            and not self.pipeline
        ):
            # the application may still answer; what it sends now must not follow the 408
            cycle.disconnected = True
            cycle.message_event.set()
            self.transport.write(REQUEST_TIMEOUT)
        elif phase == _HEAD and self._answered():
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()

    def _answered(self) -> bool:
        """Whether every request on this connection so far has its whole response."""
        return self.cycle is None or self.cycle.response_complete

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def limited_protocol(
    server: Server, before_write: Callable[[], None] | None = None
) -> type[LimitedHttpToolsProtocol]:
    """The protocol class enforcing ``server``'s head size and deadlines; its connections
    call ``before_write`` before they hand bytes to their sockets."""

    class StandbyHttpProtocol(LimitedHttpToolsProtocol):
        max_header = int(server.max_header)
        header_timeout = float(server.header_timeout)
        body_timeout = float(server.body_timeout)

    StandbyHttpProtocol.before_write = before_write

    return StandbyHttpProtocol


# file descriptors kept for everything but client and upstream connections: the
# listening socket, the journal's database and write-ahead log, logs, DNS lookups
RESERVED_FILES = 256


def uvicorn_concurrency_limit(max_connections: int) -> int:
    """uvicorn's ``limit_concurrency`` that lets exactly ``max_connections`` be served.

    uvicorn answers 503 (and closes) when a request's head arrives while the open
    connections, the asking one included, or the running requests reach the limit.
    """
    return max_connections + 1


def connection_cap(max_connections: int, *, upstream: int) -> int:
    """The client connections this process can hold, raising its open-files limit first.

    ``upstream`` is how many connections the providers may open (their pools' limits).
    A request holds at most one upstream connection at a time, so the upstream side never
    needs more descriptors than there are clients: ``min(upstream, clients)``.  Past the
    open-files limit, ``accept`` would fail silently for clients, so the cap is lowered to
    what fits (a clear 503 instead), with a warning saying what to raise.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + min(upstream, max_connections) + RESERVED_FILES
    target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return max_connections
    room = soft - RESERVED_FILES
    # clients c and upstream min(upstream, c) share the room
    allowed = max(1, room - upstream if upstream <= room // 2 else room // 2)
    log.warning(
        "server.max_connections is %d, but the open-files limit (%d) leaves room for %d "
        "client connections next to %d upstream ones; serving at most %d "
        "(raise `ulimit -n` to %d for all of them)",
        max_connections,
        soft,
        allowed,
        upstream,
        allowed,
        wanted,
    )
    return allowed
