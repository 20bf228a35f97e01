"""Two featureless forwarders, the floors a Python gateway is measured against.

    python -m bench.floor_forwarders raw  --port P --upstream http://127.0.0.1:U
    python -m bench.floor_forwarders asgi --port P --upstream http://127.0.0.1:U

Both take a chat completion, parse its JSON and serialise it again (the least any gateway
does with a body), send it to the one upstream over a kept-alive connection and hand the
answer back as it arrives, streams included.  Neither routes, journals, retries, checks
a key or bounds anything: they are not gateways, only the cost of *a Python process in
the middle* on this host, written two ways.

* ``raw``: uvloop and httptools with no framework: the client's request is parsed by
  httptools, the upstream's answer is relayed byte for byte (its own framing, so a
  chunked stream stays a stream), an upstream connection is reused per request.
* ``asgi``: the usual shape of a Python gateway: a bare ASGI function under uvicorn
  (uvloop + httptools, access log off) that posts with one shared aiohttp session and
  sends the answer on, chunk by chunk.

``bench.hop_floor`` runs them beside HAProxy and Standby.  Only ever on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httptools
import orjson
import uvicorn
import uvloop

PATH = b"/v1/chat/completions"


class _Upstream(asyncio.Protocol):
    """One kept-alive connection to the upstream, relaying each answer to a client."""

    def __init__(self, host: bytes) -> None:
        self.host = host
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: asyncio.Transport | None = None
        self.done: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.client is not None:
            self.client.write(data)  # the answer as it came: status, headers, framing
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.transport.close()  # is_closing() now says so
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("upstream closed"))

    async def relay(self, body: bytes, client: asyncio.Transport) -> None:
        assert self.transport is not None
        self.client = client
        self.done = asyncio.get_running_loop().create_future()
        head = b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n" % (
            PATH,
            self.host,
        )
        self.transport.write(head + b"content-length: %d\r\n\r\n" % len(body) + body)
        try:
            await self.done
        finally:
            self.client = None


class _RawFront(asyncio.Protocol):
    """A client connection: parse each request, relay it, one at a time."""

    def __init__(self, forwarder: RawForwarder) -> None:
        self.forwarder = forwarder
        self.parser = httptools.HttpRequestParser(self)
        self.body: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body, self.body = b"".join(self.body), []
        assert self.transport is not None
        self.forwarder.spawn(self.forwarder.handle(body, self.transport))


class RawForwarder:
    """uvloop + httptools, no framework."""

    def __init__(self, upstream: str) -> None:
        split = urlsplit(upstream)
        self.host, self.port = split.hostname or "127.0.0.1", split.port or 80
        self.idle: list[_Upstream] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def handle(self, body: bytes, client: asyncio.Transport) -> None:
        request = orjson.dumps(orjson.loads(body))
        upstream = self._reusable() or await self._connect()
        try:
            await upstream.relay(request, client)
        except ConnectionError:
            client.close()
            return
        self.idle.append(upstream)

    def _reusable(self) -> _Upstream | None:
        while self.idle:  # the mock closes a connection idle for 5 s (Node's default)
            upstream = self.idle.pop()
            if upstream.transport is not None and not upstream.transport.is_closing():
                return upstream
        return None

    async def _connect(self) -> _Upstream:
        host = f"{self.host}:{self.port}".encode()
        _transport, protocol = await asyncio.get_running_loop().create_connection(
            lambda: _Upstream(host), self.host, self.port
        )
        return protocol

    async def serve(self, port: int) -> None:
        server = await asyncio.get_running_loop().create_server(
            lambda: _RawFront(self), "127.0.0.1", port
        )
        async with server:
            await server.serve_forever()


def asgi_forwarder(upstream: str) -> Any:
    """A bare ASGI app forwarding to ``upstream`` with one aiohttp session."""
    url = upstream.rstrip("/") + PATH.decode()
    state: dict[str, aiohttp.ClientSession] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    state["session"] = aiohttp.ClientSession()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await state["session"].close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        request = orjson.dumps(orjson.loads(b"".join(chunks)))
        headers = {"content-type": "application/json"}
        async with state["session"].post(url, data=request, headers=headers) as resp:
            kind = resp.headers.get("content-type", "application/json").encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": resp.status,
                    "headers": [(b"content-type", kind)],
                }
            )
            async for piece in resp.content.iter_any():
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("kind", choices=["raw", "asgi"])
    parser.add_argument("--port", type=int, required=True, help="listen on 127.0.0.1:PORT")
    parser.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT of the mock")
    args = parser.parse_args(argv)
    if urlsplit(args.upstream).hostname not in ("127.0.0.1", "localhost"):
        parser.error("--upstream must be on loopback")
    if args.kind == "raw":
        uvloop.run(RawForwarder(args.upstream).serve(args.port))
        return 0
    uvicorn.run(
        asgi_forwarder(args.upstream),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
