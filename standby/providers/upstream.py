"""HTTP/1.1 to one provider: a pool of keep-alive connections, built on asyncio protocols
and httptools (the parser uvicorn uses on the server side).

Why not aiohttp's client, which Standby used before: a gateway's own cost is what it adds
to every call, and at saturation aiohttp's client was the largest single part of it
(about 95 of 224 µs of CPU per proxied request in ``../shared/perf/profile-2026-12-03.md``:
URL objects, multidicts, tracing hooks, a cookie jar, a stream reader and timers, most of
which a provider call never needs).  What a call to a provider does need is small and is
all here: a persistent connection per call in flight, one write of the request, the
status and headers, the body as it arrives (for streams, with back-pressure), TLS,
gzip/deflate bodies, and failures told apart by *when* they happened, because the
attempt loop treats them differently:

* the connection could not be made (refused, DNS, TLS, deadline) → ``ConnectFailed`` or
  ``DeadlineExceeded(phase="connect")``; out of file descriptors → ``LocalLimit``;
* the connection ended before the status line → ``ResetBeforeHeaders``;
* it ended, or the reply stopped parsing, after it → ``StreamBroken``.

A connection goes back to the pool only when its reply was read to the end and the server
allows keep-alive; anything else (an abandoned stream, a cancelled call, a parse error)
closes it.  Idle connections are reused newest first and dropped after ``keepalive``
seconds.  Host names are resolved once per ``dns_ttl`` seconds, not on every connect.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
import zlib
from collections import deque
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools

from standby.errors import (
    ConnectFailed,
    DeadlineExceeded,
    LocalLimit,
    ResetBeforeHeaders,
    StreamBroken,
)

KEEPALIVE = 60.0  # seconds an idle connection is kept for reuse
DNS_TTL = 300.0  # seconds a host name's addresses are reused
BODY_LIMIT = 256 * 1024 * 1024  # the largest reply body read whole (embeddings can be big)
_HIGH_WATER = 1024 * 1024  # buffered body bytes at which reading from the socket pauses
_OUT_OF_FILES = frozenset({errno.EMFILE, errno.ENFILE})
_URL_CACHE = 1024  # distinct URLs remembered per pool (one per endpoint and model)


def out_of_files(target: str, exc: BaseException) -> LocalLimit:
    """EMFILE/ENFILE while connecting: the file table of Standby (or of the machine) is full."""
    reason = "this process" if getattr(exc, "errno", None) == errno.EMFILE else "the system"
    return LocalLimit(
        f"{target}: Standby could not open a connection: too many open files in {reason} "
        "(raise the open-files limit, ulimit -n, or lower server.max_connections)",
        target=target,
    )


def _header_block(headers: Mapping[str, str]) -> bytes:
    """The fixed request header lines; a name or value that could split the request is a
    configuration error, refused when the pool is made rather than on a call."""
    lines = []
    for name, value in headers.items():
        if not name or any(c in name for c in "\r\n:") or any(c in value for c in "\r\n"):
            raise ValueError(f"header {name!r} has a character HTTP headers cannot carry")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


class Response:
    """One reply: ``status`` and ``headers`` (lower-case names) as soon as they arrive,
    then the body through ``read`` (whole) or ``read_some`` (as it comes)."""

    __slots__ = (
        "_conn",
        "_decoder",
        "_error",
        "_inflating",
        "_parts",
        "_size",
        "_waiter",
        "complete",
        "headers",
        "keep_alive",
        "status",
        "until_close",
    )

    def __init__(self, conn: _Connection, status: int, headers: dict[str, str]) -> None:
        self._conn: _Connection | None = conn
        self.status = status
        self.headers: Mapping[str, str] = headers
        self.keep_alive = True
        self.until_close = False  # no length and not chunked: the body ends with the connection
        self.complete = False
        self._parts: deque[bytes] = deque()
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self._error: StreamBroken | None = None
        self._inflating = False  # compressed bytes came: the compressed data must end too
        coding = headers.get("content-encoding", "").strip().lower()
        self._decoder = (
            zlib.decompressobj(wbits=47) if coding in ("gzip", "x-gzip", "deflate") else None
        )

    # -- fed by the connection ----------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        if self._decoder is not None:
            self._inflating = True
            try:
                # bounded: a small compressed body may not expand without limit
                data = self._decoder.decompress(data, BODY_LIMIT)
            except zlib.error:
                self._fail(f"{self._target()}: reply body is not valid compressed data")
                return
            if self._decoder.unconsumed_tail:
                self._fail(f"{self._target()}: reply body expands past {BODY_LIMIT} bytes")
                return
            if not data:
                return
        self._parts.append(data)
        self._size += len(data)
        if self._size > _HIGH_WATER and self._conn is not None:
            self._conn.pause()
        self._wake()

    def _finish(self) -> None:
        if self._error is not None:  # already cut short (bad compressed data): not complete
            self._wake()
            return
        if self._decoder is not None:
            rest = self._decoder.flush()
            if self._inflating and not self._decoder.eof:
                self._fail(f"{self._target()}: reply body ends inside its compressed data")
                return
            if rest:
                self._parts.append(rest)
                self._size += len(rest)
        self.complete = True
        self._wake()

    def _fail(self, message: str) -> None:
        if not self.complete and self._error is None:
            self._error = StreamBroken(message, target=self._target())
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _target(self) -> str:
        return self._conn.target if self._conn is not None else ""

    # -- read by the caller -------------------------------------------------------------
    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def read_some(self) -> bytes:
        """What has arrived since the last read, waiting for something if nothing has;
        ``b""`` once the body has ended.  ``StreamBroken`` if it was cut short."""
        while True:
            if self._parts:
                if len(self._parts) == 1:
                    data = self._parts.popleft()
                else:
                    data = b"".join(self._parts)
                    self._parts.clear()
                self._size = 0
                if self._conn is not None:
                    self._conn.resume()
                return data
            if self.complete:
                return b""
            if self._error is not None:
                raise self._error
            await self._wait()

    async def read(self, limit: int = BODY_LIMIT) -> bytes:
        """The whole body (at most ``limit`` bytes; ``StreamBroken`` past it)."""
        while True:
            if self._error is not None:
                raise self._error
            if self._size > limit:
                raise StreamBroken(
                    f"{self._target()}: reply body larger than {limit} bytes",
                    target=self._target(),
                )
            if self.complete:
                break
            if self._conn is not None:
                self._conn.resume()  # a whole read takes all there is
            await self._wait()
        data = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return data

    async def read_up_to(self, limit: int) -> bytes:
        """The body's first ``limit`` bytes at most (an error page's, say)."""
        parts: list[bytes] = []
        size = 0
        while size < limit:
            try:
                part = await self.read_some()
            except StreamBroken:
                break  # what did arrive of an error page is still worth reading
            if not part:
                break
            parts.append(part)
            size += len(part)
        return b"".join(parts)[:limit]

    def release(self) -> None:
        """Done with this reply: its connection is reused if the reply ended cleanly and the
        server keeps connections alive, closed otherwise.  Safe to call more than once."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.done(reuse=self.complete and self.keep_alive and self._error is None)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one call on it at a time."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.target = pool.target
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._names: list[str] = []
        self._values: list[str] = []
        self._head: asyncio.Future[Response] | None = None
        self._response: Response | None = None
        self._paused = False
        self._lost_reason = "connection lost"

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport has a Transport's methods without being one by isinstance
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._broken(f"{self.target}: reply is not valid HTTP ({exc})")

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost tells the rest

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is not None:
            self._lost_reason = f"connection lost ({type(exc).__name__})"
        head = self._head
        if head is not None and not head.done():
            head.set_exception(
                ResetBeforeHeaders(
                    f"{self.target}: {self._lost_reason} before the reply", target=self.target
                )
            )
        response = self._response
        if response is not None and not response.complete:
            if response.until_close and exc is None:
                response._finish()  # a body delimited by the connection's end: complete
            else:
                response._fail(f"{self.target}: reply cut ({self._lost_reason})")

    def pause_writing(self) -> None:  # a request body is written once, whole
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks ------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._names.append(name.decode("latin-1").lower())
        self._values.append(value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # an interim reply (100 Continue): its headers are not the reply's
            self._names.clear()
            self._values.clear()
            return
        headers: dict[str, str] = {}
        for name, value in zip(self._names, self._values, strict=True):
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self._names.clear()
        self._values.clear()
        response = Response(self, status, headers)
        response.keep_alive = self._parser.should_keep_alive()
        response.until_close = (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
            and status not in (204, 304)
        )
        self._response = response
        head = self._head
        if head is not None and not head.done():
            head.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self._response is not None:
            self._response._feed(body)

    def on_message_complete(self) -> None:
        if self._response is not None and not self._response.complete:
            self._response._finish()

    # -- used by the pool and the response ----------------------------------------------
    async def exchange(self, request: bytes) -> Response:
        """Send one request; the response once its status line and headers are in."""
        assert self.transport is not None
        self._head = asyncio.get_running_loop().create_future()
        self._response = None
        try:
            self.transport.write(request)
            return await self._head
        finally:
            self._head = None

    def pause(self) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def _broken(self, message: str) -> None:
        head = self._head
        if head is not None and not head.done():
            head.set_exception(StreamBroken(message, target=self.target))
        if self._response is not None:
            self._response._fail(message)
        self.abort()

    def done(self, *, reuse: bool) -> None:
        self._response = None
        self.resume()
        if reuse and not self.closed:
            self.pool.give_back(self)
        else:
            self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Pool:
    """Keep-alive connections to one origin (scheme, host, port) of one provider.

    ``headers`` go on every request.  The number of calls in flight is not limited here:
    the provider's slots are the one limit, taken before a call's deadlines start.
    """

    def __init__(
        self,
        target: str,
        headers: Mapping[str, str],
        *,
        keepalive: float = KEEPALIVE,
        dns_ttl: float = DNS_TTL,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.target = target
        self.keepalive = keepalive
        self.dns_ttl = dns_ttl
        self._headers = _header_block(
            {"User-Agent": "standby", "Accept-Encoding": "identity", **headers}
        )
        self._ssl_context = ssl_context
        self._idle: deque[_Connection] = deque()
        self._urls: dict[str, tuple[tuple[str, str, int], bytes]] = {}
        self._addresses: dict[tuple[str, int], tuple[float, list[tuple[str, int]]]] = {}
        self._prune: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def idle(self) -> int:
        """Connections open and waiting for a call."""
        return len(self._idle)

    def _split(self, url: str) -> tuple[tuple[str, str, int], bytes]:
        found = self._urls.get(url)
        if found is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"not an http(s) URL: {url!r}")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            default = port == (443 if parts.scheme == "https" else 80)
            host = parts.hostname if default else f"{parts.hostname}:{port}"
            if ":" in parts.hostname:  # an IPv6 literal goes back in brackets
                host = f"[{parts.hostname}]" + ("" if default else f":{port}")
            head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n".encode("latin-1")
            found = ((parts.scheme, parts.hostname, port), head)
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()
            self._urls[url] = found
        return found

    async def post(self, url: str, body: bytes, *, connect_timeout: float) -> Response:
        """POST ``body`` (JSON) to ``url``; the response once its headers are in."""
        origin, head = self._split(url)
        request = b"".join((head, self._headers, b"Content-Length: %d\r\n\r\n" % len(body), body))
        conn = self._reusable()
        if conn is None:
            conn = await self._connect(origin, connect_timeout)
        try:
            return await conn.exchange(request)
        except BaseException:
            conn.abort()
            raise

    def _reusable(self) -> _Connection | None:
        now = asyncio.get_running_loop().time()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive:
                return conn
            conn.abort()
        return None

    def give_back(self, conn: _Connection) -> None:
        if self._closed:
            conn.abort()
            return
        loop = asyncio.get_running_loop()
        conn.idle_since = loop.time()
        self._idle.append(conn)
        if self._prune is None:
            self._prune = loop.call_later(self.keepalive, self._drop_stale)

    def _drop_stale(self) -> None:
        self._prune = None
        now = asyncio.get_running_loop().time()
        while self._idle and (
            self._idle[0].closed or now - self._idle[0].idle_since >= self.keepalive
        ):
            self._idle.popleft().abort()
        if self._idle:
            wait = self.keepalive - (now - self._idle[0].idle_since)
            self._prune = asyncio.get_running_loop().call_later(max(wait, 0.1), self._drop_stale)

    async def _resolve(self, host: str, port: int) -> list[tuple[str, int]]:
        loop = asyncio.get_running_loop()
        cached = self._addresses.get((host, port))
        if cached is not None and loop.time() - cached[0] < self.dns_ttl:
            return cached[1]
        infos = await loop.getaddrinfo(host, port, type=1)  # SOCK_STREAM
        addresses = [(str(info[4][0]), int(info[4][1])) for info in infos]
        if not addresses:
            raise OSError(f"no address for {host}")
        self._addresses[(host, port)] = (loop.time(), addresses)
        return addresses

    async def _connect(self, origin: tuple[str, str, int], within: float) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            context = self._ssl_context
        try:
            async with asyncio.timeout(within):
                last: OSError | None = None
                for address, address_port in await self._resolve(host, port):
                    try:
                        _, protocol = await loop.create_connection(
                            lambda: _Connection(self),
                            address,
                            address_port,
                            ssl=context,
                            server_hostname=host if context is not None else None,
                        )
                    except OSError as exc:
                        if exc.errno in _OUT_OF_FILES:
                            raise
                        last = exc
                        continue
                    return protocol
                raise last if last is not None else OSError(f"cannot connect to {host}")
        except TimeoutError as exc:
            raise DeadlineExceeded(
                f"{self.target}: connect timed out", phase="connect", target=self.target
            ) from exc
        except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
            if exc.errno in _OUT_OF_FILES:
                raise out_of_files(self.target, exc) from exc
            raise ConnectFailed(
                f"{self.target}: cannot connect ({type(exc).__name__}: {exc})", target=self.target
            ) from exc

    def close(self) -> None:
        """Close the idle connections; those in use close when their calls finish."""
        self._closed = True
        if self._prune is not None:
            self._prune.cancel()
            self._prune = None
        while self._idle:
            self._idle.pop().abort()
