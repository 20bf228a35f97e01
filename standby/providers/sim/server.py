"""The simulated provider: an OpenAI-compatible aiohttp server with selectable faults.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/embeddings``, ``GET /v1/models``,
``GET /health``, and the admin ``POST|DELETE /_sim/fault``, ``GET /_sim/stats``,
``POST /_sim/reset`` (statistics only) and ``POST /_sim/release``. Faults apply to chat
and embeddings requests only, and only those are recorded in ``requests``.

Held connections (``silent``, and ``stall`` with ``delay=0``) wait for ``release()`` or
``clear()``, then go on as if nothing happened: a silent request is answered, a stalled
stream continues. ``stop()`` aborts them instead. A ``stall`` with a delay also ends
early on release.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import socket
import time
from collections import Counter
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from standby.providers.sim import answers
from standby.providers.sim.faults import (
    ERROR_KINDS,
    PREFILL_MESSAGE,
    ErrorReply,
    Fault,
    FaultState,
    Shape,
    error_json,
    error_reply,
)

_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
_MALFORMED = b"data: {not json\n\n"
_CUT_KINDS = frozenset({"cut_stream", "stall", "malformed_event", "tool_call_cut"})


@dataclass(frozen=True, slots=True)
class SimRequest:
    """One chat or embeddings request as the provider saw it (header names lower-cased)."""

    path: str
    body: dict[str, Any]
    fault: str  # the fault kind that applied (see ``faults`` for conditional kinds)
    at: float  # time.monotonic()
    headers: dict[str, str]


class SimProvider:
    """An OpenAI-compatible provider on a local port, with every fault of the catalogue.

    ``keep`` bounds ``requests`` (the oldest go first) so a long benchmark stays small;
    the counters in ``stats()`` stay exact.
    """

    def __init__(self, name: str = "sim", *, words: int = 20, chunk_delay: float = 0.0,
                 accepts_prefill: bool = True, overlap: int = 0, keep: int = 10_000) -> None:  # fmt: skip
        self.name, self.words, self.chunk_delay = name, words, chunk_delay
        self.accepts_prefill, self.overlap, self.keep = accepts_prefill, overlap, keep
        self.base_url = ""
        self.requests: list[SimRequest] = []
        self._faults = FaultState()
        self._counts: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._gate = asyncio.Event()
        self._held: set[asyncio.BaseTransport] = set()
        self._runner: web.AppRunner | None = None
        self._stopping = False

    def __repr__(self) -> str:
        return f"<SimProvider {self.name} {self.base_url or 'stopped'} {self._faults!r}>"

    async def __aenter__(self) -> SimProvider:
        await self.start()
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.stop()

    @property
    def fault(self) -> Fault:
        """The fault set now."""
        return self._faults.fault

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0: any free port); returns the bound port."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(4096)
        sock.setblocking(False)
        self._stopping = False
        self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=True,
                                     shutdown_timeout=0.5)  # fmt: skip
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        bound: int = sock.getsockname()[1]
        shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
        self.base_url = f"http://{shown}:{bound}/v1"
        return bound

    async def stop(self) -> None:
        """Close the listener and every connection, held ones included."""
        self._stopping = True
        for transport in list(self._held):
            transport.abort()
        self.release()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def set_fault(self, fault: Fault) -> None:
        """Apply ``fault`` to the next requests (see ``Fault.times``)."""
        self._faults.set(fault)

    def clear(self) -> None:
        """Back to ``ok``, releasing held connections."""
        self._faults.clear()
        self.release()

    def release(self) -> int:
        """Let every held (silent or stalled) connection go on; returns how many were held."""
        held = len(self._held)
        self._gate.set()
        self._gate = asyncio.Event()
        return held

    def expected_text(self, words: int | None = None) -> str:
        """The full canned answer (of ``words`` words, default the provider's)."""
        return answers.canned_text(self.words if words is None else words)

    def reset_stats(self) -> None:
        """Forget the recorded requests and counters."""
        self.requests.clear()
        self._counts.clear()

    def stats(self) -> dict[str, Any]:
        """Counters, the fault set now and the last 100 requests, JSON-ready."""
        recent = [{"path": r.path, "fault": r.fault, "at": r.at, "body": r.body}
                  for r in self.requests[-100:]]  # fmt: skip
        return {"name": self.name, "count": self._counts.total(), "faults": dict(self._counts),
                "fault": self.fault.to_json(), "left": self._faults.left,
                "held": len(self._held), "requests": recent}  # fmt: skip

    def app(self) -> web.Application:
        """The aiohttp application (``start`` runs it; also usable with a test server)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_post("/_sim/fault", self._admin_set)
        app.router.add_delete("/_sim/fault", self._admin_clear)
        app.router.add_get("/_sim/stats", self._admin_stats)
        app.router.add_post("/_sim/reset", self._admin_reset)
        app.router.add_post("/_sim/release", self._admin_release)
        return app

    # -- the OpenAI endpoints ---------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, valid = await _read_json(request)
        stream = body.get("stream") is True
        answer = answers.plan_answer(body, self.words, self.overlap)
        prefill = answers.ends_with_prefill(body)
        shape = Shape(stream=stream, tools=answer.tool is not None, prefill=prefill)
        fault = self._select(request, body, shape)
        if isinstance(fault, web.Response):
            return fault
        if not await self._prelude(request, fault, stream):
            return web.Response()
        if fault.kind in ERROR_KINDS:
            return _error(error_reply(fault, stream=stream, prompt=answers.prompt_tokens(body)))
        if not valid or not isinstance(body.get("messages"), list):
            return _invalid("the body must be a JSON object with a list of messages")
        if prefill and not self.accepts_prefill:
            return _invalid(PREFILL_MESSAGE, param="messages")
        meta = answers.Meta(id=f"chatcmpl-sim-{next(self._ids)}", created=int(time.time()),
                            model=str(body.get("model") or "sim-model"),
                            fingerprint=f"fp_sim_{self.name}")  # fmt: skip
        n, prompt = _count(body.get("n")), answers.prompt_tokens(body)
        if stream:
            options = body.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            events = answers.stream_events(answer, meta, n=n, prompt=prompt, usage=usage)
            return await self._stream(request, events, fault)
        reply = answers.completion(answer, meta, n=n, prompt=prompt)
        return await self._reply(request, orjson.dumps(reply), fault)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body, valid = await _read_json(request)
        fault = self._select(request, body, Shape())
        if isinstance(fault, web.Response):
            return fault
        if not await self._prelude(request, fault, stream=False):
            return web.Response()
        if fault.kind in ERROR_KINDS:
            return _error(error_reply(fault))
        if not valid or body.get("input") is None:
            return _invalid("the body must be a JSON object with an input", param="input")
        return await self._reply(request, orjson.dumps(answers.embeddings(body)), fault)

    async def _models(self, request: web.Request) -> web.Response:
        data = [{"id": model, "object": "model", "created": 0, "owned_by": f"sim-{self.name}"}
                for model in ("sim-model", "sim-embed")]  # fmt: skip
        return _json({"object": "list", "data": data})

    async def _health(self, request: web.Request) -> web.Response:
        return _json({"status": "ok", "name": self.name, "fault": self.fault.kind})

    # -- fault mechanics --------------------------------------------------------------

    def _select(self, request: web.Request, body: dict[str, Any], shape: Shape) -> Fault | web.Response:
        """Pick and record this request's fault (an error response for a bad override)."""
        try:
            override = Fault.from_headers(request.headers)
        except ValueError as exc:
            return _invalid(str(exc))
        selection = self._faults.select(shape, override)
        headers = {key.lower(): value for key, value in request.headers.items()}
        self.requests.append(SimRequest(request.path, body, selection.label, time.monotonic(), headers))
        if len(self.requests) > self.keep + self.keep // 2:
            del self.requests[: len(self.requests) - self.keep]
        self._counts[selection.label] += 1
        return selection.fault

    async def _prelude(self, request: web.Request, fault: Fault, stream: bool) -> bool:
        """Faults that act before any answer; False when the connection is gone."""
        kind = fault.kind
        if kind == "latency" or (kind == "slow_first_token" and not (stream and fault.headers_early)):
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
        elif kind == "reset":
            _abort(request)
            return False
        elif kind == "silent" and not await self._hold(request, 0.0):
            return False
        return True

    async def _hold(self, request: web.Request, seconds: float) -> bool:
        """Hold for ``seconds`` (0: until released); False (connection aborted) on stop."""
        transport = request.transport
        if transport is None:
            return False
        gate = self._gate
        self._held.add(transport)
        try:
            if seconds > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(gate.wait(), seconds)
            else:
                await gate.wait()
        finally:
            self._held.discard(transport)
        if self._stopping:
            _abort(request)
            return False
        return True

    async def _reply(self, request: web.Request, payload: bytes, fault: Fault) -> web.StreamResponse:
        """A non-streamed answer; cut_stream and stall break it after half the body."""
        if fault.kind == "malformed_event":
            payload = b"{not json"
        if fault.kind not in ("cut_stream", "stall"):
            return web.Response(body=payload, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = len(payload)
        half = len(payload) // 2
        try:
            await resp.prepare(request)
            await resp.write(payload[:half])
            if fault.kind == "cut_stream" or not await self._hold(request, fault.delay):
                await _flush_and_abort(request)
                return resp
            await resp.write(payload[half:])
            await resp.write_eof()
        except ConnectionError:
            pass
        return resp

    async def _stream(self, request: web.Request, events: answers.Events, fault: Fault) -> web.StreamResponse:
        """Write an SSE stream, with the fault's cut, stall, bad event or missing end."""
        kind, body = fault.kind, events.body
        cut = len(body)
        if kind in _CUT_KINDS:
            # A tool call is always cut inside its arguments.
            cut = min(fault.after, len(body) - 1 if kind == "tool_call_cut" else len(body))
        resp = web.StreamResponse(headers=_SSE_HEADERS)
        try:
            await resp.prepare(request)
            if kind == "slow_first_token" and fault.delay > 0:  # headers_early: sent already
                await asyncio.sleep(fault.delay)
            await self._write(resp, events.head, body[:cut])
            if kind in ("cut_stream", "tool_call_cut"):
                await _flush_and_abort(request)
                return resp
            if kind == "stall" and not await self._hold(request, fault.delay):
                return resp
            if kind == "malformed_event":
                await resp.write(_MALFORMED)
            await self._write(resp, b"", body[cut:])
            if kind != "no_done_no_finish":
                done = b"" if kind == "no_done" else events.done
                await resp.write(events.finish + events.usage + done)
            await resp.write_eof()
        except ConnectionError:
            pass
        return resp

    async def _write(self, resp: web.StreamResponse, head: bytes, pieces: list[bytes]) -> None:
        if self.chunk_delay <= 0:
            if head or pieces:
                await resp.write(head + b"".join(pieces))
            return
        if head:
            await resp.write(head)
        for piece in pieces:
            await asyncio.sleep(self.chunk_delay)
            await resp.write(piece)

    # -- admin ------------------------------------------------------------------------

    async def _admin_set(self, request: web.Request) -> web.Response:
        try:
            fault = Fault.from_json(orjson.loads(await request.read()))
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            return _invalid(str(exc))
        self.set_fault(fault)
        return _json({"fault": fault.to_json()})

    async def _admin_clear(self, request: web.Request) -> web.Response:
        self.clear()
        return _json({"fault": self.fault.to_json()})

    async def _admin_stats(self, request: web.Request) -> web.Response:
        return _json(self.stats())

    async def _admin_reset(self, request: web.Request) -> web.Response:
        self.reset_stats()
        return _json({"reset": True})

    async def _admin_release(self, request: web.Request) -> web.Response:
        return _json({"released": self.release()})


async def _read_json(request: web.Request) -> tuple[dict[str, Any], bool]:
    """The body as a dict, and whether it was a valid JSON object."""
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return {}, False
    return (data, True) if isinstance(data, dict) else ({}, False)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and 1 <= value <= 128 else 1


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _invalid(message: str, param: str | None = None) -> web.Response:
    return web.Response(body=error_json(message, "invalid_request_error", None, param),
                        status=400, content_type="application/json")  # fmt: skip


def _error(reply: ErrorReply) -> web.Response:
    return web.Response(body=reply.body, status=reply.status, content_type=reply.content_type,
                        headers=dict(reply.headers))  # fmt: skip


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


async def _flush_and_abort(request: web.Request) -> None:
    """Abort once what was written has left, so the client sees it before the reset."""
    transport = request.transport
    for _ in range(400):
        if transport is None or transport.get_write_buffer_size() == 0:
            break
        await asyncio.sleep(0.005)
    _abort(request)


def run_sim(host: str, port: int, name: str, words: int, chunk_delay: float) -> None:
    """Serve a simulated provider until Ctrl-C or SIGTERM (uvloop when installed)."""

    async def serve() -> None:
        sim = SimProvider(name, words=words, chunk_delay=chunk_delay)
        await sim.start(host, port)
        print(sim.base_url, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            await sim.stop()

    try:
        import uvloop
    except ImportError:
        asyncio.run(serve())
    else:
        uvloop.run(serve())
