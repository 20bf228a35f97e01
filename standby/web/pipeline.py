"""One request pipeline for every wire: the steps are the same, only the formats differ.

    authenticate → read → parse → resolve → prepare → journal ``accepted``
        → stream (from the first content) or complete → respond → journal the end

Each inbound wire (OpenAI chat completions and embeddings, Anthropic Messages, OpenAI
Responses) is this pipeline configured by a ``Wire``: a few hooks that say how the
vendor's body becomes the OpenAI-shaped body the router speaks, and how an answer, an
error and a stream's events look in the vendor's format.  The hooks' defaults are
OpenAI's shape passed through (the lingua franca inside): an OpenAI-compatible endpoint
overrides ``parse`` only.

A stream leaves the engine as OpenAI SSE; ``translator`` splits it into chunks once for
every wire, and a wire's ``StreamEvents`` only maps each delta to its own events.

The router is called in one place for each kind of answer (``Router.stream``;
``Router.attempt_schedule`` and ``Router.complete``), and client keys are checked in one
place (``Pipeline.authenticated``), whatever the wire.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

import orjson

from standby.canonical import Endpoint, Reply
from standby.canonical.chat import Delta
from standby.capacity.clients import ClientLimits
from standby.capacity.guard import CapacityGuard
from standby.capacity.metering import Metered
from standby.errors import ClientError, Exhausted, Overloaded, StandbyError
from standby.journal.events import RequestIds
from standby.plan.model import StorePolicy
from standby.routing.attempts import AttemptSchedule, journal_attempts
from standby.routing.policy import ResolvedRoute, Target
from standby.routing.router import Router
from standby.routing.sink import JournalSink, NullJournal
from standby.routing.streams import OnDisconnect
from standby.translate.openai import delta_from_openai
from standby.web import errors
from standby.web.asgi import (
    ClientGone,
    Headers,
    Receive,
    Scope,
    Send,
    read_body,
    respond,
    standby_headers,
    stream_response,
    with_request_id,
)
from standby.web.clients import Caller, ClientKeys, stored

__all__ = [
    "Answer",
    "CallerHandler",
    "ErrorFormat",
    "Handler",
    "Pipeline",
    "Rendered",
    "Request",
    "Running",
    "StreamEvents",
    "Wire",
    "translator",
]

log = logging.getLogger("standby.web")

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
CallerHandler = Callable[[Caller, Scope, Receive, Send], Awaitable[None]]
Rendered = tuple[int, bytes, Headers]  # status, body, extra headers
ErrorFormat = Callable[[StandbyError], Rendered]  # an error in a wire's own shape


@dataclass(slots=True, eq=False)
class Request:
    """One request as its wire read it: what to route, and what the journal keeps."""

    raw: bytes  # the body as received, journaled as is
    body: dict[str, Any]  # OpenAI-shaped: what the router sends (``Wire.prepare`` may set it)
    model: object  # the model asked for (the router checks it)
    stream: bool = False
    metadata: dict[str, Any] | None = None
    store: object = None  # the request's own ``store`` field, if the wire has one


@dataclass(slots=True)  # not frozen: built on every request, and frozen costs a setattr each
class Answer:
    """A complete (non-streamed) answer in a wire's format."""

    body: bytes  # what the client receives
    record: bytes | dict[str, Any]  # what the journal keeps
    id: str = ""  # the journal's completion id; empty: the request id


class Running(Protocol):
    """What a wire's stream events may read of the running stream (``StreamRun``)."""

    @property
    def stream_id(self) -> str: ...

    @property
    def target(self) -> Target | None:
        """The target serving now (another one after a continuation)."""
        ...


class StreamEvents(Protocol):
    """One client stream in a wire's own event format, fed by ``translator``."""

    def prelude(self) -> bytes:
        """What goes out with the response head, before the first chunk (may be empty)."""
        ...

    def feed(self, delta: Delta) -> bytes:
        """One delta of the answer → the wire's events for it (possibly none)."""
        ...

    def finish(self) -> bytes:
        """The answer is complete (the engine's ``[DONE]``)."""
        ...

    def interrupted(self, error: dict[str, Any]) -> bytes:
        """The engine's error event: the answer broke and nothing could continue it."""
        ...


R = TypeVar("R", bound=Request)


class Wire(Protocol[R]):
    """What a vendor's wire tells the pipeline; the defaults pass OpenAI's shape through."""

    name: str  # the journal's ``endpoint``: chat, embeddings, messages, responses
    endpoint: Endpoint = "chat"  # what the router is asked for
    # whether an answer is stored when the request does not say (OpenAI's defaults per
    # endpoint); None: this wire serves nothing back
    store_default: bool | None = False

    def parse(self, raw: bytes) -> R:
        """The body → a request with its OpenAI-shaped body; a bad one: ``ClientError``."""
        ...

    async def prepare(self, request: R, caller: Caller) -> None:
        """What needs I/O once the route is known (Responses: the earlier turns)."""
        return None

    def answer(self, request: R, reply: Reply, model: str) -> Answer:
        """The router's OpenAI-shaped reply in the wire's format."""
        return Answer(reply.raw, reply.raw, str(reply.data.get("id") or ""))

    def recorder(self, request: R, journal: JournalSink) -> JournalSink:
        """The journal as the stream engine should see it for ``request``."""
        return journal

    def events(self, request: R, run: Running, target: Target) -> StreamEvents | None:
        """The client stream's events once ``target`` gave content; None: OpenAI's, as is."""
        return None

    def error(self, error: StandbyError) -> Rendered:
        """An error that ends the request, in the wire's shape."""
        return errors.render(error)

    async def accept_for_later(
        self, rid: str, scope: Scope, request: R, route: ResolvedRoute
    ) -> Rendered | None:
        """What to answer instead of a 503 when nothing can serve a (non-streamed)
        request now; None: the 503.  May refuse with a ``ClientError``."""
        return None


class Pipeline:
    """The steps every wire's requests take, configured per wire by its ``Wire`` hooks."""

    def __init__(
        self,
        router: Router,
        keys: ClientKeys,
        journal: JournalSink | None = None,
        *,
        max_body: int,
        store: StorePolicy = "on_request",
        on_disconnect: OnDisconnect = "cancel",
        limits: ClientLimits | None = None,
        capacity: CapacityGuard | None = None,
    ) -> None:
        """``limits``: the clients' own rate limits; ``capacity``: the targets' limits,
        told the tokens of each answer."""
        self.router = router
        self._ids = RequestIds()
        self.keys = keys
        self.journal: JournalSink = journal or NullJournal()
        self.max_body = max_body
        self.store = store  # the journal's store policy (routes and clients may override)
        self.on_disconnect: OnDisconnect = on_disconnect  # a client leaving mid-stream
        self.limits = limits
        self.capacity = capacity

    def handler(self, wire: Wire[R]) -> Handler:
        """The ASGI handler of ``wire``'s endpoint: the whole pipeline."""
        return self.authenticated(partial(self._serve, wire), wire.error)

    def authenticated(
        self, handler: CallerHandler, error: ErrorFormat = errors.render, *, admin: bool = False
    ) -> Handler:
        """``handler`` behind the client-key check, its caller passed on; a refusal is
        rendered by ``error``.  ``admin``: the admin token is accepted too."""
        identify = self.keys.identify

        async def authenticated(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                caller = identify(scope, admin=admin)
            except ClientError as refused:
                await self.refuse(error, refused, send)
                return
            await handler(caller, scope, receive, send)

        return authenticated

    async def refuse(self, render: ErrorFormat, error: StandbyError, send: Send) -> None:
        """Answer a request that never got an id (nothing journaled) with ``error``."""
        await self._fail(render, "", None, error, send)

    async def _serve(
        self, wire: Wire[R], caller: Caller, scope: Scope, receive: Receive, send: Send
    ) -> None:
        rid = ""
        plan: AttemptSchedule | None = None
        quota: Headers = []  # the client's x-ratelimit-* figures, when it has limits
        journal = self.journal
        try:
            request = wire.parse(await read_body(scope, receive, self.max_body))
            route = self.router.resolve(request.model)
            limits = self.limits
            if limits is not None and limits.limited(caller.name):
                quota = list(await limits.admit(caller.name))
                journal = self._metered(caller)
            elif self.capacity is not None and self.capacity.counts_tokens:
                journal = self._metered(caller)
            await wire.prepare(request, caller)
            rid = self._ids()
            self._accepted(wire, rid, request, route, caller)
            if request.stream:
                run = self.router.stream(
                    request.body,
                    route,
                    journal=wire.recorder(request, journal),
                    rid=rid,
                    on_disconnect=self.on_disconnect,
                    priority=caller.priority,
                )
                plan = run.plan
                target = await run.start()  # failures up to the first content: failovers
            else:
                plan = self.router.attempt_schedule(route, priority=caller.priority)
                try:
                    done = await self.router.complete(wire.endpoint, request.body, route, plan)
                except Exhausted:
                    later = await wire.accept_for_later(rid, scope, request, route)
                    if later is None:
                        raise
                    status, body, headers = later
                    await respond(send, status, body, headers=headers)
                    return
        except ClientGone:
            return
        except StandbyError as error:
            await self._fail(wire.error, rid, plan, error, send)
            return
        if request.stream:
            headers = standby_headers(
                target.provider, target.model, run.plan.attempts + 1, route.name, rid
            )
            headers.extend(quota)
            events = wire.events(request, run, target)
            if events is None:
                await stream_response(send, headers, run, receive=receive)
            else:
                await stream_response(
                    send,
                    headers,
                    run,
                    translate=translator(events),
                    prelude=events.prelude(),
                    receive=receive,
                )
            return
        model = done.reply.model or done.target.model
        answer = wire.answer(request, done.reply, model)
        journal.completed(
            rid,
            completion_id=answer.id or rid,
            provider=done.target.provider,
            model=model,
            response=answer.record,
            usage=done.reply.usage,
            attempts=journal_attempts(done.history),
        )
        await respond(
            send,
            200,
            answer.body,
            headers=[
                *standby_headers(done.target.provider, model, done.attempts, route.name, rid),
                *quota,
            ],
        )

    def _metered(self, caller: Caller) -> JournalSink:
        """The journal, telling the token limits what each answer used."""
        limits, capacity, client = self.limits, self.capacity, caller.name

        def used(provider: str, model: str, tokens: int) -> None:
            if limits is not None:
                limits.spent(client, tokens)
            if capacity is not None and capacity.counts_tokens:
                capacity.spent_soon(provider, model, tokens)

        return Metered(self.journal, used)

    def _accepted(
        self, wire: Wire[R], rid: str, request: R, route: ResolvedRoute, caller: Caller
    ) -> None:
        default = wire.store_default
        self.journal.accepted(
            rid,
            endpoint=wire.name,
            route=route.name,
            model=str(request.model),
            stream=request.stream,
            raw_body=request.raw,
            metadata=request.metadata,
            store=default is not None
            and stored(
                caller,
                self.router.route_config(route).store,
                self.store,
                request.store,
                default=default,
            ),
            client=caller.name,
        )

    async def _fail(
        self,
        render: ErrorFormat,
        rid: str,
        plan: AttemptSchedule | None,
        error: StandbyError,
        send: Send,
    ) -> None:
        status, body, headers = render(error)
        if isinstance(error, Overloaded):  # the provider slots already warn, once per 10 s
            log.info("request %s refused: %s", rid or "-", error)
        elif status >= 500:
            log.warning("request %s failed: %s", rid or "-", error)
        if rid:
            self.journal.failed(
                rid,
                status=status,
                response=body,
                attempts=journal_attempts(plan.history if plan else []),
            )
        await respond(send, status, body, headers=with_request_id(headers, rid))


def translator(events: StreamEvents) -> Callable[[bytes], bytes]:
    """The stream engine's OpenAI SSE bytes (one or several events a call) → ``events``."""

    def translate(data: bytes) -> bytes:
        out: list[bytes] = []
        for event in data.split(b"\n\n"):
            payload = event.strip().removeprefix(b"data:").strip()
            if not payload:
                continue
            if payload == b"[DONE]":
                out.append(events.finish())
                continue
            chunk = orjson.loads(payload)
            if "error" in chunk:
                error = chunk["error"]
                out.append(events.interrupted(error if isinstance(error, dict) else {}))
                continue
            out.extend(events.feed(delta) for delta in delta_from_openai(chunk))
        return b"".join(out)

    return translate
