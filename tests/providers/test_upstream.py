"""``upstream.Pool``: HTTP/1.1 to one provider, against raw servers on loopback.

Every server here is an ``asyncio.start_server`` on 127.0.0.1 that writes exact bytes, so
each framing, each way a reply can end and each failure is the real thing on a real
socket.  Server and client are sequenced with events, never with timed sleeps.
"""

from __future__ import annotations

import asyncio
import errno
import gzip
import hashlib
import os
import shutil
import socket
import ssl
import struct
import subprocess
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from standby.errors import (
    ConnectFailed,
    DeadlineExceeded,
    ProviderError,
    ResetBeforeHeaders,
    StreamBroken,
)
from standby.providers.upstream import _HIGH_WATER, Pool, Response, out_of_files

CONNECT = 5.0  # connect deadline of the calls that are meant to connect
GUARD = 5.0  # the longest any awaited event may take before the test fails instead of hanging
JSON = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'


# -- the raw server ---------------------------------------------------------------------
class Peer:
    """One accepted connection, as the server sees it."""

    def __init__(self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.index = index  # 0 for the first connection the server accepted, and so on
        self.reader = reader
        self.writer = writer
        self.requests: list[bytes] = []  # each request as it arrived, head and body
        self.got = asyncio.Event()  # a request arrived
        self.gone = asyncio.Event()  # the client closed (EOF or reset)

    async def request(self) -> bytes | None:
        """The next request, raw; None once the client has closed."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            raw = head + await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.gone.set()
            return None
        self.requests.append(raw)
        self.got.set()
        return raw

    async def wait_gone(self) -> None:
        """Read (and drop) whatever comes until the client closes."""
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionError:
            pass
        self.gone.set()

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def reset(self) -> None:
        """End the connection with a TCP reset instead of a FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


Handler = Callable[[Peer], Awaitable[None]]


def reply(body: bytes = b'{"ok":true}', *, status: str = "200 OK", headers: str = "") -> bytes:
    """A complete reply with a Content-Length."""
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{headers}\r\n"
    )
    return head.encode() + body


def chunks(*parts: bytes, end: bool = True) -> bytes:
    """Parts in chunked framing, with the last (empty) chunk when ``end``."""
    assert all(parts), "an empty chunk would end the body"
    framed = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    return framed + (b"0\r\n\r\n" if end else b"")


CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def answering(raw: bytes, *, close: bool = False) -> Handler:
    """Answer every request on the connection with ``raw``; close after one if ``close``."""

    async def handler(peer: Peer) -> None:
        while await peer.request() is not None:
            peer.send(raw)
            if close:
                return

    return handler


async def answer_each(peer: Peer) -> None:
    """The default: a small JSON reply naming the connection, for as long as it stays open."""
    while await peer.request() is not None:
        peer.send(reply(b'{"peer":%d}' % peer.index))


class Upstream:
    """A raw HTTP/1.1 server on 127.0.0.1; each accepted connection runs ``handler``, and
    the connection is closed when the handler returns."""

    def __init__(self) -> None:
        self.handler: Handler = answer_each
        self.peers: list[Peer] = []
        self.port = 0
        self.scheme = "http"
        self.errors: list[BaseException] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, tls: ssl.SSLContext | None = None) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]
        self.scheme = "https" if tls is not None else "http"

    def url(self, path: str = "/v1/chat/completions") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    @property
    def accepted(self) -> int:
        return len(self.peers)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(len(self.peers), reader, writer)
        self.peers.append(peer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.handler(peer)
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the test is over
        except Exception as exc:  # a broken handler fails the test at teardown
            self.errors.append(exc)
        finally:
            self._tasks.discard(task)
            writer.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for peer in self.peers:
            peer.writer.transport.abort()
        await self._server.wait_closed()
        assert not self.errors, self.errors


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def pool() -> AsyncIterator[Pool]:
    made = Pool("up", {"Authorization": "Bearer sk-test"})
    yield made
    made.close()


async def call(pool: Pool, upstream: Upstream, body: bytes = JSON) -> Response:
    return await pool.post(upstream.url(), body, connect_timeout=CONNECT)


async def fetch(pool: Pool, upstream: Upstream) -> bytes:
    """One whole call: the body, the reply released."""
    resp = await call(pool, upstream)
    try:
        return await resp.read()
    finally:
        resp.release()


async def happened(event: asyncio.Event) -> None:
    async with asyncio.timeout(GUARD):
        await event.wait()


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run (yielding, never sleeping for a time) until ``condition`` holds."""
    async with asyncio.timeout(GUARD):
        while not condition():  # noqa: ASYNC110  (state of the pool's own, no event to await)
            await asyncio.sleep(0)


# -- a plain call -----------------------------------------------------------------------
async def test_a_post_arrives_exactly_and_its_reply_comes_back(upstream: Upstream) -> None:
    answer = (
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Request-ID: r-1\r\n"
        b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 11\r\n\r\n"
        b'{"ok":true}'
    )
    upstream.handler = answering(answer)
    pool = Pool("up", {"Authorization": "Bearer sk-test", "Content-Type": "application/json"})
    try:
        resp = await pool.post(
            upstream.url("/v1beta/models/m:streamGenerateContent?alt=sse"),
            JSON,
            connect_timeout=CONNECT,
        )
        assert resp.status == 201
        assert dict(resp.headers) == {
            "content-type": "application/json",
            "x-request-id": "r-1",
            "set-cookie": "a=1, b=2",  # repeated headers are joined
            "content-length": "11",
        }
        assert await resp.read() == b'{"ok":true}'
        resp.release()
    finally:
        pool.close()
    expected = (
        "POST /v1beta/models/m:streamGenerateContent?alt=sse HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{upstream.port}\r\n"
        "User-Agent: standby\r\n"
        "Accept-Encoding: identity\r\n"
        "Authorization: Bearer sk-test\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(JSON)}\r\n"
        "\r\n"
    ).encode() + JSON
    assert upstream.peers[0].requests == [expected]


async def test_a_pools_own_headers_replace_the_defaults(upstream: Upstream) -> None:
    pool = Pool("up", {"User-Agent": "acme/1.0", "Accept-Encoding": "gzip"})
    try:
        assert await fetch(pool, upstream) == b'{"peer":0}'
    finally:
        pool.close()
    head = upstream.peers[0].requests[0].split(b"\r\n\r\n")[0].split(b"\r\n")
    length = f"Content-Length: {len(JSON)}".encode()
    assert head[2:] == [b"User-Agent: acme/1.0", b"Accept-Encoding: gzip", length]


async def test_an_empty_body_and_the_root_path(upstream: Upstream, pool: Pool) -> None:
    resp = await pool.post(f"http://127.0.0.1:{upstream.port}", b"", connect_timeout=CONNECT)
    await resp.read()
    resp.release()
    request = upstream.peers[0].requests[0]
    assert request.startswith(b"POST / HTTP/1.1\r\n")
    assert request.endswith(b"Content-Length: 0\r\n\r\n")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "http:///v1/chat", "127.0.0.1:80/v1"])
async def test_a_url_that_is_not_http_is_refused(pool: Pool, url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        await pool.post(url, JSON, connect_timeout=CONNECT)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer sk\r\nX-Evil: 1"},
        {"Authorization": "Bearer sk\nX-Evil: 1"},
        {"Authorization": "Bearer sk\r"},
        {"X-Evil\r\nHost": "x"},
        {"X-Evil: 1\r\nX-A": "x"},
        {"X:Y": "x"},
        {"": "x"},
    ],
    ids=["crlf-value", "lf-value", "cr-value", "crlf-name", "header-in-name", "colon", "empty"],
)
def test_a_header_that_could_split_the_request_is_refused_when_the_pool_is_made(
    headers: dict[str, str],
) -> None:
    with pytest.raises(ValueError, match="HTTP headers cannot carry"):
        Pool("up", headers)


# -- keep-alive -------------------------------------------------------------------------
async def test_sequential_calls_share_one_connection(upstream: Upstream, pool: Pool) -> None:
    assert await fetch(pool, upstream) == b'{"peer":0}'
    assert pool.idle == 1
    assert await fetch(pool, upstream) == b'{"peer":0}'
    assert await fetch(pool, upstream) == b'{"peer":0}'
    assert upstream.accepted == 1
    assert len(upstream.peers[0].requests) == 3
    assert pool.idle == 1


async def test_a_call_in_flight_gets_its_own_connection(upstream: Upstream, pool: Pool) -> None:
    first = await call(pool, upstream)
    second = await call(pool, upstream)  # the first is not released: no idle connection yet
    assert (await first.read(), await second.read()) == (b'{"peer":0}', b'{"peer":1}')
    first.release()
    second.release()
    assert pool.idle == 2
    # newest first: the connection released last serves the next call
    assert await fetch(pool, upstream) == b'{"peer":1}'
    assert upstream.accepted == 2


@pytest.mark.parametrize(
    "answer",
    [
        reply(headers="Connection: close\r\n"),
        b'HTTP/1.0 200 OK\r\nContent-Length: 11\r\n\r\n{"ok":true}',
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_a_reply_that_forbids_keep_alive_is_not_reused(
    upstream: Upstream, pool: Pool, answer: bytes
) -> None:
    upstream.handler = answering(answer)  # the server itself would keep the connection open
    resp = await call(pool, upstream)
    assert resp.keep_alive is False
    assert await resp.read() == b'{"ok":true}'
    resp.release()
    assert pool.idle == 0
    await happened(upstream.peers[0].gone)  # Standby closed it
    await fetch(pool, upstream)
    assert upstream.accepted == 2


async def test_a_reply_released_before_its_end_closes_its_connection(
    upstream: Upstream, pool: Pool
) -> None:
    upstream.handler = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
    resp = await call(pool, upstream)
    assert resp.status == 200
    resp.release()
    resp.release()  # twice is harmless
    assert pool.idle == 0
    await happened(upstream.peers[0].gone)
    upstream.handler = answer_each
    assert await fetch(pool, upstream) == b'{"peer":1}'


async def test_an_idle_connection_the_server_closed_is_skipped(
    upstream: Upstream, pool: Pool
) -> None:
    close = asyncio.Event()

    async def handler(peer: Peer) -> None:
        if peer.index > 0:
            return await answer_each(peer)
        await peer.request()
        peer.send(reply())  # keep-alive allowed...
        await close.wait()  # ...but the server drops the connection once it is idle

    upstream.handler = handler
    await fetch(pool, upstream)
    assert pool.idle == 1
    idle = pool._idle[0]
    close.set()
    await until(lambda: idle.closed)
    assert await fetch(pool, upstream) == b'{"peer":1}'
    assert upstream.accepted == 2


# -- idle expiry and close ---------------------------------------------------------------
async def test_a_connection_idle_past_keepalive_is_not_reused(upstream: Upstream) -> None:
    pool = Pool("up", {}, keepalive=60.0)
    try:
        await fetch(pool, upstream)
        pool._idle[0].idle_since -= 61.0  # idle for a minute and a second
        assert await fetch(pool, upstream) == b'{"peer":1}'
        await happened(upstream.peers[0].gone)  # the stale one was closed, not leaked
        assert pool.idle == 1
    finally:
        pool.close()


async def test_the_pruner_drops_stale_connections_and_keeps_fresh_ones(
    upstream: Upstream,
) -> None:
    pool = Pool("up", {}, keepalive=60.0)
    try:
        first, second = await call(pool, upstream), await call(pool, upstream)
        for resp in (first, second):
            await resp.read()
            resp.release()
        assert pool.idle == 2
        pool._idle[0].idle_since -= 61.0  # the older one is stale, the newer one is not
        pool._drop_stale()
        assert pool.idle == 1
        await happened(upstream.peers[0].gone)
        assert not upstream.peers[1].gone.is_set()
        assert pool._prune is not None  # due again for the one left
        assert await fetch(pool, upstream) == b'{"peer":1}'
    finally:
        pool.close()
    assert pool._prune is None


async def test_a_zero_keepalive_never_reuses(upstream: Upstream) -> None:
    pool = Pool("up", {}, keepalive=0.0)
    try:
        await fetch(pool, upstream)
        pool._drop_stale()
        assert pool.idle == 0
        await happened(upstream.peers[0].gone)
        await fetch(pool, upstream)
        assert upstream.accepted == 2
    finally:
        pool.close()


async def test_close_closes_idle_connections_and_those_in_use_when_released(
    upstream: Upstream, pool: Pool
) -> None:
    busy = await call(pool, upstream)
    await fetch(pool, upstream)  # a second connection, now idle
    assert pool.idle == 1
    pool.close()
    assert pool.idle == 0
    await happened(upstream.peers[1].gone)
    assert not upstream.peers[0].gone.is_set()  # still in use
    assert await busy.read() == b'{"peer":0}'
    busy.release()  # read to the end, but the pool is closed: not kept
    assert pool.idle == 0
    await happened(upstream.peers[0].gone)


# -- bodies -----------------------------------------------------------------------------
_TEXT = b'{"choices":[{"message":{"content":"' + b"hello " * 200 + b'"}}]}'
_GZ = gzip.compress(_TEXT)


@pytest.mark.parametrize(
    ("answer", "close", "body", "reused"),
    [
        (reply(_TEXT), False, _TEXT, True),
        (CHUNKED + chunks(b'{"a":', b"1", b"}"), False, b'{"a":1}', True),
        (CHUNKED + b"3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n", False, b"abc", True),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + _TEXT, True, _TEXT, False),
        (b"HTTP/1.0 200 OK\r\n\r\n" + _TEXT, True, _TEXT, False),
        (b"HTTP/1.1 204 No Content\r\n\r\n", False, b"", True),
        (b"HTTP/1.1 204 No Content\r\nContent-Encoding: gzip\r\n\r\n", False, b"", True),
        (reply(b"", headers="X-Empty: 1\r\n"), False, b"", True),
        (reply(_GZ, headers="Content-Encoding: gzip\r\n"), False, _TEXT, True),
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunks(_GZ[:10], _GZ[10:40], _GZ[40:]),
            False,
            _TEXT,
            True,
        ),
        (reply(zlib.compress(_TEXT), headers="Content-Encoding: deflate\r\n"), False, _TEXT, True),
        (b"HTTP/1.1 100 Continue\r\n\r\n" + reply(_TEXT), False, _TEXT, True),
    ],
    ids=[
        "content-length",
        "chunked",
        "chunk-extension-and-trailer",
        "until-close",
        "http-1.0-until-close",
        "204",
        "204-gzip",
        "empty",
        "gzip",
        "gzip-chunked",
        "deflate",
        "after-100-continue",
    ],
)
async def test_each_framing_gives_the_whole_body(
    upstream: Upstream, pool: Pool, answer: bytes, close: bool, body: bytes, reused: bool
) -> None:
    upstream.handler = answering(answer, close=close)
    resp = await call(pool, upstream)
    assert resp.status in (200, 204)
    assert resp.until_close is close
    assert await resp.read() == body
    assert await resp.read_some() == b""  # and nothing after the end
    resp.release()
    assert pool.idle == (1 if reused else 0)
    if reused:
        assert not upstream.peers[0].gone.is_set()


async def test_a_body_that_is_not_valid_gzip_is_a_broken_stream(
    upstream: Upstream, pool: Pool
) -> None:
    upstream.handler = answering(reply(b"this is not gzip", headers="Content-Encoding: gzip\r\n"))
    resp = await call(pool, upstream)
    with pytest.raises(StreamBroken, match="not valid compressed data"):
        await resp.read()
    resp.release()
    assert pool.idle == 0


async def test_a_gzip_body_cut_short_is_a_broken_stream(upstream: Upstream, pool: Pool) -> None:
    upstream.handler = answering(reply(_GZ[: len(_GZ) // 2], headers="Content-Encoding: gzip\r\n"))
    resp = await call(pool, upstream)
    with pytest.raises(StreamBroken, match="compressed data"):
        await resp.read()
    resp.release()
    assert pool.idle == 0


# -- streaming --------------------------------------------------------------------------
async def test_read_some_gives_each_part_as_it_arrives(upstream: Upstream, pool: Pool) -> None:
    steps = [asyncio.Event() for _ in range(2)]

    async def handler(peer: Peer) -> None:
        await peer.request()
        peer.send(CHUNKED + chunks(b"data: one\n\n", end=False))
        await steps[0].wait()
        peer.send(chunks(b"data: two\n\n", end=False))
        await steps[1].wait()
        peer.send(chunks(b"data: [DONE]\n\n"))
        await answer_each(peer)

    upstream.handler = handler
    resp = await call(pool, upstream)
    assert resp.headers["transfer-encoding"] == "chunked"
    assert await resp.read_some() == b"data: one\n\n"
    steps[0].set()
    assert await resp.read_some() == b"data: two\n\n"
    steps[1].set()
    rest = b""
    while part := await resp.read_some():
        rest += part
    assert rest == b"data: [DONE]\n\n"
    assert await resp.read_some() == b""
    resp.release()
    assert pool.idle == 1
    assert await fetch(pool, upstream) == b'{"peer":0}'  # the same connection again


async def test_a_slow_reader_pauses_the_socket_and_still_gets_every_byte(
    upstream: Upstream, pool: Pool
) -> None:
    payload = os.urandom(6 * 1024 * 1024)
    upstream.handler = answering(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload
    )
    resp = await call(pool, upstream)
    conn = resp._conn
    assert conn is not None and conn.transport is not None
    transport = conn.transport
    await until(lambda: not transport.is_reading())  # nobody reads: past the high-water mark
    buffered = resp._size
    assert _HIGH_WATER < buffered <= 2 * _HIGH_WATER
    for _ in range(20):  # the loop goes on, the socket stays paused
        await asyncio.sleep(0)
    assert resp._size == buffered and not transport.is_reading()

    digest = hashlib.sha256()
    size = 0
    while part := await resp.read_some():
        assert transport.is_reading()  # a read resumes it
        digest.update(part)
        size += len(part)
    assert size == len(payload)
    assert digest.digest() == hashlib.sha256(payload).digest()
    resp.release()
    assert pool.idle == 1  # read to the end: kept, and reading again
    assert transport.is_reading()


async def test_a_whole_read_takes_a_body_bigger_than_the_high_water_mark(
    upstream: Upstream, pool: Pool
) -> None:
    payload = os.urandom(5 * 1024 * 1024)
    upstream.handler = answering(
        CHUNKED + chunks(*(payload[i : i + 65536] for i in range(0, len(payload), 65536)))
    )
    resp = await call(pool, upstream)
    assert await resp.read() == payload
    resp.release()
    assert pool.idle == 1


async def test_read_refuses_a_body_past_its_limit(upstream: Upstream, pool: Pool) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
        await peer.wait_gone()

    upstream.handler = handler
    resp = await call(pool, upstream)
    with pytest.raises(StreamBroken, match="larger than 10 bytes"):
        await resp.read(limit=10)
    resp.release()
    await happened(upstream.peers[0].gone)


async def test_read_refuses_a_body_past_its_limit_even_once_it_is_complete(
    upstream: Upstream, pool: Pool
) -> None:
    upstream.handler = answering(reply(b"x" * 100))
    resp = await call(pool, upstream)
    await until(lambda: resp.complete)
    with pytest.raises(StreamBroken, match="larger than 10 bytes"):
        await resp.read(limit=10)
    resp.release()


@pytest.mark.parametrize(
    ("answer", "limit", "expected"),
    [
        (reply(b"0123456789" * 100), 10, b"0123456789"),
        (reply(b"short"), 100, b"short"),
        (CHUNKED + chunks(b"abc", b"def", b"ghi"), 5, b"abcde"),
        # a cut error page: what did arrive is still worth reading
        (b"HTTP/1.1 500 Oops\r\nContent-Length: 100\r\n\r\npartial", 100, b"partial"),
    ],
    ids=["longer", "shorter", "chunked", "cut"],
)
async def test_read_up_to_gives_at_most_its_limit(
    upstream: Upstream, pool: Pool, answer: bytes, limit: int, expected: bytes
) -> None:
    upstream.handler = answering(answer, close=True)
    resp = await call(pool, upstream)
    assert await resp.read_up_to(limit) == expected
    resp.release()


# -- failures, told apart by when they happened -----------------------------------------
@pytest.mark.parametrize(
    ("sent", "end", "raised_by", "error"),
    [
        (b"", "close", "post", ResetBeforeHeaders),
        (b"", "reset", "post", ResetBeforeHeaders),
        (b"HTTP/1.1 200 O", "close", "post", ResetBeforeHeaders),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "reset", "post", ResetBeforeHeaders),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "hold", "post", StreamBroken),
        (b"HTTP/1.1 2xx OK\r\n\r\n", "hold", "post", StreamBroken),
        (b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", "hold", "post", StreamBroken),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", "close", "read", StreamBroken),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", "reset", "read", StreamBroken),
        (CHUNKED + chunks(b"data: 1\n\n", end=False), "close", "read", StreamBroken),
        (CHUNKED + chunks(b"data: 1\n\n", end=False), "reset", "read", StreamBroken),
        (CHUNKED + b"5\r\nabc", "close", "read", StreamBroken),
        (CHUNKED + b"zz\r\nabc\r\n", "hold", "read", StreamBroken),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial", "reset", "read", StreamBroken),
    ],
    ids=[
        "closed-before-anything",
        "reset-before-anything",
        "closed-in-status-line",
        "reset-in-headers",
        "not-http",
        "garbage-status",
        "bad-content-length",
        "closed-in-sized-body",
        "reset-in-sized-body",
        "closed-in-chunked-body",
        "reset-in-chunked-body",
        "closed-in-a-chunk",
        "bad-chunk-size",
        "reset-in-body-until-close",
    ],
)
async def test_each_failure_is_told_apart_by_when_it_happened(
    upstream: Upstream,
    pool: Pool,
    sent: bytes,
    end: str,
    raised_by: str,
    error: type[ProviderError],
) -> None:
    proceed = asyncio.Event()  # for a failure in the body: once the client has the head
    if raised_by == "post":
        proceed.set()

    async def handler(peer: Peer) -> None:
        await peer.request()
        peer.send(sent)
        await proceed.wait()
        if end == "reset":
            peer.reset()
        elif end == "hold":  # the server keeps it open: Standby must close it
            await peer.wait_gone()
        # "close": the handler returns, the server closes with a FIN

    upstream.handler = handler
    if raised_by == "post":
        with pytest.raises(error) as caught:
            await call(pool, upstream)
    else:
        resp = await call(pool, upstream)
        assert resp.status == 200
        proceed.set()
        with pytest.raises(error) as caught:
            await resp.read()
        with pytest.raises(error):  # what did arrive, then the same failure: not an end
            while await resp.read_some():
                pass
        resp.release()
    assert type(caught.value) is error
    assert caught.value.target == "up"
    assert pool.idle == 0
    if end == "hold":
        await happened(upstream.peers[0].gone)
    upstream.handler = answer_each
    assert await fetch(pool, upstream) == b'{"peer":1}'  # the pool is fine afterwards


async def test_a_refused_connection_is_connect_failed(pool: Pool) -> None:
    with socket.socket() as bound:  # bound but not listening: connecting is refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        with pytest.raises(ConnectFailed, match="cannot connect") as caught:
            await pool.post(f"http://127.0.0.1:{port}/v1", JSON, connect_timeout=CONNECT)
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    assert caught.value.target == "up"


async def test_no_time_to_connect_is_a_connect_deadline(upstream: Upstream, pool: Pool) -> None:
    with pytest.raises(DeadlineExceeded, match="connect timed out") as caught:
        await pool.post(upstream.url(), JSON, connect_timeout=0)
    assert caught.value.phase == "connect"
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert pool.idle == 0


@pytest.mark.parametrize(
    ("code", "whose"),
    [(errno.EMFILE, "this process"), (errno.ENFILE, "the system")],
    ids=["EMFILE", "ENFILE"],
)
def test_out_of_files_names_whose_file_table_is_full(code: int, whose: str) -> None:
    error = out_of_files("up", OSError(code, os.strerror(code)))
    assert error.target == "up"
    assert f"too many open files in {whose}" in error.message
    assert "ulimit -n" in error.message


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_a_call_given_up_while_waiting_for_the_head_closes_its_connection(
    upstream: Upstream, pool: Pool, how: str
) -> None:
    async def handler(peer: Peer) -> None:
        if peer.index > 0:
            return await answer_each(peer)
        await peer.request()  # and no reply
        await peer.wait_gone()

    upstream.handler = handler
    scope: asyncio.Future[asyncio.Timeout] = asyncio.get_running_loop().create_future()

    async def timed() -> Response:
        async with asyncio.timeout(None) as timeout:
            scope.set_result(timeout)
            return await call(pool, upstream)

    attempt = asyncio.create_task(timed())
    await until(lambda: upstream.accepted == 1)
    await happened(upstream.peers[0].got)
    if how == "cancel":
        attempt.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attempt
    else:
        scope.result().reschedule(asyncio.get_running_loop().time())
        with pytest.raises(TimeoutError):
            await attempt
    await happened(upstream.peers[0].gone)
    assert pool.idle == 0
    assert await fetch(pool, upstream) == b'{"peer":1}'


# -- TLS --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl CLI is not installed: no certificate to serve TLS with")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_upstream(certificate: tuple[Path, Path]) -> AsyncIterator[Upstream]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = Upstream()
    await server.start(tls=context)
    yield server
    await server.stop()


async def test_https_with_a_trusted_certificate(
    tls_upstream: Upstream, certificate: tuple[Path, Path]
) -> None:
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    pool = Pool("up", {"Authorization": "Bearer sk-test"}, ssl_context=trusting)
    try:
        assert tls_upstream.url().startswith("https://")
        assert await fetch(pool, tls_upstream) == b'{"peer":0}'
        assert await fetch(pool, tls_upstream) == b'{"peer":0}'  # kept alive over TLS too
    finally:
        pool.close()
    assert tls_upstream.accepted == 1
    request = tls_upstream.peers[0].requests[0]
    assert f"Host: 127.0.0.1:{tls_upstream.port}\r\n".encode() in request
    assert request.endswith(JSON)
    await happened(tls_upstream.peers[0].gone)  # close() ended the idle TLS connection


async def test_https_to_an_untrusted_certificate_is_connect_failed(
    tls_upstream: Upstream,
) -> None:
    pool = Pool("up", {})  # the default context: the system's trust store
    try:
        with pytest.raises(ConnectFailed, match="cannot connect") as caught:
            await fetch(pool, tls_upstream)
    finally:
        pool.close()
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
    assert tls_upstream.accepted == 0  # the handshake never completed
