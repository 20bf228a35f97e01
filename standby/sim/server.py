"""The simulated provider: an OpenAI-compatible aiohttp server with selectable faults.

Endpoints: ``POST /v1/chat/completions`` (JSON, or SSE with ``"stream": true``),
``POST /v1/embeddings``, ``GET /v1/models``, ``GET /health``, Anthropic's
``POST /v1/messages`` (``anthropic_wire``), Gemini's ``POST /v1beta/models/{model}:
generateContent`` and ``:streamGenerateContent`` (``gemini_wire``), the admin endpoints
``POST /_sim/fault`` (a JSON ``Fault``), ``DELETE /_sim/fault`` (``clear``),
``GET /_sim/stats``, ``POST /_sim/reset`` (statistics only) and ``POST /_sim/release``.
Faults apply to chat (every wire) and embeddings requests only, and only those are
recorded in ``requests``. ``stop()`` aborts held connections; ``release()`` and
``clear()`` let them go on (see ``faults``). ``run_sim`` (the process) is in ``serve``.
"""

from __future__ import annotations

import itertools
import secrets
import socket
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from standby.sim import answers
from standby.sim.anthropic_wire import AnthropicWire
from standby.sim.faults import (
    Fault,
    FaultState,
    Holds,
    Shape,
    before_answer,
    send_body,
    send_stream,
)
from standby.sim.gemini_wire import GeminiWire


@dataclass(frozen=True, slots=True)
class SimRequest:
    """One chat (any wire) or embeddings request as the provider saw it (header names
    lower-cased; ``body`` as sent, in its wire's shape)."""

    path: str
    body: dict[str, Any]
    fault: str  # the fault kind that applied (conditional kinds: see ``faults``)
    at: float  # time.monotonic()
    headers: dict[str, str]


class SimProvider:
    """An OpenAI-compatible provider on a local port, with every fault of the catalogue,
    also speaking Anthropic's and Gemini's wires (same faults, answers and records).

    ``words`` is the length of the canned answer, ``chunk_delay`` the pause before each
    streamed content chunk, ``accepts_prefill=False`` rejects a final assistant message
    (Anthropic's wire ignores it: that API supports prefill),
    ``overlap`` makes continuations repeat that many characters of the prefix. ``keep``
    bounds ``requests`` (oldest dropped first) for long benchmarks; counters stay exact.
    ``rpm`` limits chat requests (OpenAI's wire) per sliding minute as a provider account
    does: one more is answered 429 with Retry-After and OpenAI's ``x-ratelimit-*-requests``
    headers, and counted in ``over_limit``.
    """

    def __init__(
        self,
        name: str = "sim",
        *,
        words: int = 20,
        chunk_delay: float = 0.0,
        accepts_prefill: bool = True,
        overlap: int = 0,
        keep: int = 10_000,
        rpm: int | None = None,
    ) -> None:
        self.name, self.words, self.chunk_delay = name, words, chunk_delay
        self.accepts_prefill, self.overlap, self.keep = accepts_prefill, overlap, keep
        self.base_url = ""
        self.requests: list[SimRequest] = []
        self._faults = FaultState()
        self.holds = Holds()  # connections held by silent and stall (the wires share it)
        self._counts: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._tag = secrets.token_hex(3)  # ids stay unique across sims and restarts
        self._runner: web.AppRunner | None = None
        self.rpm = rpm
        self._minute: deque[float] = deque()  # when the last minute's requests came
        self.over_limit = 0  # requests refused for ``rpm``

    def __repr__(self) -> str:
        return f"<SimProvider {self.name} {self.base_url or 'stopped'} {self._faults!r}>"

    async def __aenter__(self) -> SimProvider:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def root_url(self) -> str:
        """``base_url`` without ``/v1``: Anthropic SDKs' base URL (Gemini's: ``+ "/v1beta"``)."""
        return self.base_url.removesuffix("/v1")

    @property
    def fault(self) -> Fault:
        """The fault set now (``ok`` when none)."""
        return self._faults.fault

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0: any free port); returns the bound port."""
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self.holds = Holds()
        self._runner = web.AppRunner(
            self.app(), access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        await web.SockSite(self._runner, sock, backlog=4096).start()
        bound: int = sock.getsockname()[1]
        shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        self.base_url = f"http://{f'[{shown}]' if ':' in shown else shown}:{bound}/v1"
        return bound

    async def stop(self) -> None:
        """Close the listener and every connection, held ones included."""
        self.holds.stop()
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
        """Let held (silent or stalled) connections go on; returns how many there were."""
        return self.holds.release()

    async def wait_held(self, count: int = 1) -> None:
        """Return once at least ``count`` connections are held by silent or stall."""
        await self.holds.wait(count)

    def next_id(self) -> str:
        """A fresh ``<tag>_<n>`` for reply ids, unique across sims and restarts."""
        return f"{self._tag}_{next(self._ids)}"

    def expected_text(self, words: int | None = None) -> str:
        """The full canned answer (of ``words`` words, default the provider's)."""
        return answers.canned_text(self.words if words is None else words)

    def reset_stats(self) -> None:
        """Forget the recorded requests and counters."""
        self.requests.clear()
        self._counts.clear()

    def stats(self) -> dict[str, Any]:
        """Counters, the fault set now and the last 100 requests, JSON-ready."""
        recent = [
            {"path": r.path, "fault": r.fault, "at": r.at, "body": r.body}
            for r in self.requests[-100:]
        ]
        return {
            "name": self.name,
            "count": self._counts.total(),
            "faults": dict(self._counts),
            "fault": self.fault.to_json(),
            "left": self._faults.left,
            "held": len(self.holds),
            "requests": recent,
        }

    def app(self) -> web.Application:
        """The aiohttp application (``start`` runs it)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._azure)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/status/api/v2/summary.json", self._status_page)
        app.add_routes([*AnthropicWire(self).routes(), *GeminiWire(self).routes()])
        for method, path in (
            ("POST", "fault"),
            ("DELETE", "fault"),
            ("GET", "stats"),
            ("POST", "reset"),
            ("POST", "release"),
        ):
            app.router.add_route(method, f"/_sim/{path}", self._admin)
        return app

    async def _azure(self, request: web.Request) -> web.StreamResponse:
        """Azure OpenAI's deployment URL: ``api-version`` and an ``api-key`` are required."""
        if not request.query.get("api-version"):
            return _invalid("Missing required query parameter: api-version")
        if not request.headers.get("api-key"):
            return web.json_response(
                {
                    "error": {
                        "code": "401",
                        "message": "Access denied due to missing subscription key.",
                    }
                },
                status=401,
            )
        return await self._chat(request)

    def _rate(self) -> tuple[dict[str, str], float | None]:
        """``rpm``'s headers for one more request, and its wait if it is over the limit."""
        if self.rpm is None:
            return {}, None
        now = time.monotonic()
        while self._minute and self._minute[0] <= now - 60.0:
            self._minute.popleft()
        wait = None
        if len(self._minute) >= self.rpm:
            wait = self._minute[len(self._minute) - self.rpm] + 60.0 - now
        else:
            self._minute.append(now)
        headers = {
            "x-ratelimit-limit-requests": str(self.rpm),
            "x-ratelimit-remaining-requests": str(self.rpm - len(self._minute)),
            "x-ratelimit-reset-requests": f"{max(0.001, 60.0 - (now - self._minute[0])):.3f}s",
        }
        return headers, wait

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        limits, wait = self._rate()
        if wait is not None:
            self.over_limit += 1
            self._counts["over_limit"] += 1
            refusal = answers.error_reply("rate_limit", 429, max(1.0, wait))
            return web.Response(
                body=refusal.body,
                status=429,
                content_type=refusal.content_type,
                headers={**dict(refusal.headers), **limits},
            )
        body, valid = await _read_json(request)
        stream = body.get("stream") is True
        answer = answers.plan_answer(body, self.words, self.overlap)
        prefill = answers.ends_with_prefill(body)
        try:
            fault = self.select(request, body, Shape(stream, answer.tool is not None, prefill))
        except ValueError as exc:
            return _invalid(str(exc))
        if not await before_answer(request, fault, self.holds, stream):
            return web.Response()
        prompt = answers.prompt_tokens(body)
        if fault.kind in answers.ERROR_KINDS:
            return _error(fault, stream, prompt)
        if not valid or not isinstance(body.get("messages"), list):
            return _invalid("the body must be a JSON object with a list of messages")
        if prefill and not self.accepts_prefill:
            return _invalid(answers.PREFILL_MESSAGE, "messages")
        model = str(body.get("model") or "sim-model")
        meta = answers.Meta(
            f"chatcmpl-sim-{self._tag}-{next(self._ids)}",
            int(time.time()),
            model,
            f"fp_sim_{self.name}",
        )
        n = body["n"] if isinstance(body.get("n"), int) and 1 <= body["n"] <= 128 else 1
        if not stream:
            reply = answers.completion(answer, meta, n=n, prompt=prompt)
            return await send_body(request, orjson.dumps(reply), fault, self.holds)
        options = body.get("stream_options")
        usage = isinstance(options, dict) and options.get("include_usage") is True
        events = answers.stream_events(answer, meta, n=n, prompt=prompt, usage=usage)
        return await send_stream(request, events, fault, self.holds, self.chunk_delay)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body, valid = await _read_json(request)
        try:
            fault = self.select(request, body, Shape())
        except ValueError as exc:
            return _invalid(str(exc))
        if not await before_answer(request, fault, self.holds, stream=False):
            return web.Response()
        if fault.kind in answers.ERROR_KINDS:
            return _error(fault, False, 0)
        if not valid or body.get("input") is None:
            return _invalid("the body must be a JSON object with an input", "input")
        return await send_body(request, orjson.dumps(answers.embeddings(body)), fault, self.holds)

    async def _models(self, request: web.Request) -> web.Response:
        owner = f"sim-{self.name}"
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": owner}
            for m in ("sim-model", "sim-embed")
        ]
        return _json({"object": "list", "data": data})

    async def _health(self, request: web.Request) -> web.Response:
        return _json({"status": "ok", "name": self.name, "fault": self.fault.kind})

    async def _status_page(self, request: web.Request) -> web.Response:
        """An official status page of the sim's own, in Atlassian Statuspage v2's shape:
        what a vendor would declare while the fault that is set lasts (a provider that
        declares every outage at once, which real ones do not)."""
        kind = self.fault.kind
        status = {"ok": "operational", "latency": "degraded_performance"}.get(
            kind, "partial_outage" if kind in ("flap", "rate_limit") else "major_outage"
        )
        incidents = []
        if status != "operational":
            incidents.append(
                {
                    "id": f"sim-{kind}",
                    "name": f"{self.name}: elevated errors ({kind})",
                    "status": "identified",
                    "impact": "critical" if status == "major_outage" else "minor",
                    "created_at": "2026-01-01T00:00:00Z",
                    "shortlink": f"{self.root_url}/status",
                    "components": [{"name": "Chat Completions"}],
                    "incident_updates": [
                        {
                            "status": "identified",
                            "body": "We have identified the issue and are working on a fix.",
                            "created_at": "2026-01-01T00:00:00Z",
                        }
                    ],
                }
            )
        indicator = {"operational": "none", "degraded_performance": "minor"}.get(status, "major")
        return _json(
            {
                "page": {"id": self.name, "name": f"{self.name} status", "url": self.root_url},
                "status": {"indicator": indicator, "description": status},
                "components": [{"id": "chat", "name": "Chat Completions", "status": status}],
                "incidents": incidents,
                "scheduled_maintenances": [],
            }
        )

    async def _admin(self, request: web.Request) -> web.Response:
        action = (request.method, request.path.rsplit("/", 1)[-1])
        if action == ("POST", "fault"):
            try:
                self.set_fault(Fault.from_json(orjson.loads(await request.read())))
            except (orjson.JSONDecodeError, ValueError) as exc:
                return _invalid(str(exc))
        elif action == ("DELETE", "fault"):
            self.clear()
        elif action == ("POST", "reset"):
            self.reset_stats()
        elif action == ("POST", "release"):
            return _json({"released": self.release()})
        else:
            return _json(self.stats())
        return _json({"fault": self.fault.to_json()})

    def select(self, request: web.Request, body: dict[str, Any], shape: Shape) -> Fault:
        """Pick and record this request's fault; ``ValueError`` for a bad ``x-sim-*`` header."""
        selection = self._faults.select(shape, Fault.from_headers(request.headers))
        headers = {key.lower(): value for key, value in request.headers.items()}
        record = SimRequest(request.path, body, selection.label, time.monotonic(), headers)
        self.requests.append(record)
        if len(self.requests) > self.keep + self.keep // 2:  # trimmed in batches: amortised
            del self.requests[: len(self.requests) - self.keep]
        self._counts[selection.label] += 1
        return selection.fault


async def _read_json(request: web.Request) -> tuple[dict[str, Any], bool]:
    """The body as a dict, and whether it was a valid JSON object."""
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return {}, False
    return (data, True) if isinstance(data, dict) else ({}, False)


def _json(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def _invalid(message: str, param: str | None = None) -> web.Response:
    body = answers.error_json(message, "invalid_request_error", None, param)
    return web.Response(body=body, status=400, content_type="application/json")


def _error(fault: Fault, stream: bool, prompt: int) -> web.Response:
    reply = answers.error_reply(
        fault.kind, fault.status, fault.retry_after, stream=stream, prompt=prompt
    )
    return web.Response(
        body=reply.body,
        status=reply.status,
        content_type=reply.content_type,
        headers=dict(reply.headers),
    )
