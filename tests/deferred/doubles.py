"""Test doubles for the deferred runner: a scripted provider, an open health gate, an
in-memory journal service, a hand-moved clock, an ASGI ``send`` recorder, an HTTP
receiver for callbacks and a scripted DNS resolver."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Any, cast

import orjson
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from standby.canonical import Call, Deadlines, Reply
from standby.deferred.runner import Deferral, DeferredRunner, DeferredService
from standby.errors import UpstreamStatus
from standby.health.gate import OpenGate as OpenGate  # re-exported for the tests
from standby.journal.store import DeferredRow
from standby.plan.model import JournalConfig, Plan

SECRET = "whsec_unit"
# the receivers listen on loopback, which a callback may reach only when listed
HOSTS = ["127.0.0.1", "h"]
WAIT = 5.0  # bound on every wait for a background task


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Upstream:
    """A provider that is down, up, or holding every request until released."""

    name = "a"
    prefill = False

    def __init__(self) -> None:
        self.down = True
        self.hold: asyncio.Event | None = None
        self.calls = 0
        self.called = asyncio.Condition()

    async def wait_calls(self, count: int) -> None:
        async with asyncio.timeout(WAIT), self.called:
            await self.called.wait_for(lambda: self.calls >= count)

    async def send(self, call: Call, deadlines: Deadlines) -> Reply:
        async with self.called:
            self.calls += 1
            self.called.notify_all()
        if self.hold is not None:
            await self.hold.wait()
        if self.down:
            raise UpstreamStatus("down", status=503, kind="unavailable")
        data = {
            "id": "chatcmpl-upstream",
            "object": "chat.completion",
            "model": "m-real",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hi"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return Reply(raw=orjson.dumps(data), data=data)

    async def open_stream(self, call: Call, deadlines: Deadlines) -> Any:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


class NoMetrics:
    def request_done(self, route: str, outcome: str, seconds: float) -> None: ...
    def failover(self, route: str) -> None: ...
    def first_token(self, route: str, seconds: float) -> None: ...
    def continuation(self, route: str, outcome: str) -> None: ...


class Service:
    """Journal events land in ``events``; ``flush`` applies them to the in-memory rows.

    ``pending_deferred`` deliberately ignores ``next_at``: the runner must hold its own
    pauses even over a store that does not filter on them.
    """

    def __init__(self, clock: Clock, **config: Any) -> None:
        self.clock = clock
        config.setdefault("callback_hosts", HOSTS)
        self.config = JournalConfig(**config)
        self.callback_secret = SECRET
        self.journal = self
        self.store = self
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.rows: dict[str, DeferredRow] = {}
        self.requests: dict[str, dict[str, Any]] = {}
        self.applied = 0
        self.tries: list[tuple[str, float]] = []

    def accept(self, rid: str, body: dict[str, Any]) -> None:
        self.requests[rid] = body

    def deferred(self, rid: str, *, until: float, callback: str | None) -> None:
        self.events.append(("dfr", rid, {"until": until, "callback": callback}))

    def completed(self, rid: str, **fields: Any) -> None:
        self.events.append(("completed", rid, fields))

    def failed(
        self, rid: str, *, status: int, response: bytes, attempts: Sequence[tuple[str, str, float]]
    ) -> None:
        self.events.append(("failed", rid, {"status": status, "response": response}))

    async def flush(self) -> None:
        for kind, rid, fields in self.events[self.applied :]:
            if kind == "dfr":
                self.rows[rid] = DeferredRow(
                    rid=rid,
                    received_at=self.clock(),
                    until=fields["until"],
                    callback=fields["callback"],
                    route="m",
                    request=self.requests[rid],
                    tries=0,
                )
            else:
                self.rows.pop(rid, None)
        self.applied = len(self.events)

    async def pending_deferred(self, now: float, limit: int = 10) -> list[DeferredRow]:
        return sorted(self.rows.values(), key=lambda r: r.received_at)[:limit]

    async def claim_deferred(self, rid: str, now: float, lease: float) -> bool:
        return rid in self.rows  # one runner here: a row still deferred is always free

    async def note_deferred_try(self, rid: str, next_at: float) -> None:
        self.tries.append((rid, next_at))
        old = self.rows[rid]
        self.rows[rid] = DeferredRow(
            old.rid, old.received_at, old.until, old.callback, old.route, old.request, old.tries + 1
        )

    def finals(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [e for e in self.events if e[0] != "dfr"]


def as_service(service: Service) -> DeferredService:
    """The fake is one object playing journal, store and service; tell mypy so."""
    return cast(DeferredService, service)


PLAN = Plan.model_validate(
    {
        "providers": {"a": {"base_url": "http://127.0.0.1:9"}},
        "retry": {"same_target": 0, "backoff": "1ms"},
        "routes": {
            "m": {"targets": ["a/m"], "defer": {"allowed": True, "max_age": "1h"}},
            "strict": {"targets": ["a/m"]},
        },
    }
)
BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def scope(*headers: tuple[bytes, bytes], path: str = "/v1/chat/completions") -> dict[str, Any]:
    return {"type": "http", "path": path, "headers": list(headers)}


OPT_IN = (b"standby-defer", b"allow")


async def defer(
    runner: DeferredRunner,
    service: Service,
    rid: str,
    *headers: tuple[bytes, bytes],
    body: dict[str, Any] = BODY,
) -> Deferral:
    service.accept(rid, body)
    route = runner.router.resolve(body["model"])
    deferral = await runner.maybe_defer(rid, scope(OPT_IN, *headers), body, route)
    assert deferral is not None
    return deferral


class Receiver:
    """A local HTTP server recording callbacks; answers each with the next status queued,
    or never while ``hold`` is an unset event."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.arrived = asyncio.Event()  # a callback was answered 200
        self.entered = asyncio.Event()  # a callback came in
        self.hold: asyncio.Event | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read()))
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.arrived.set()
        return web.Response(status=status)


class Resolver(AbstractResolver):
    """DNS as scripted: each lookup answers the next address of ``answers`` (the last one
    once they run out), and is recorded in ``asked``."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        address = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        kind = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": kind,
                "proto": socket.IPPROTO_TCP,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        pass
