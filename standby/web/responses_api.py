"""The Responses wire: ``POST /v1/responses`` for callers of ``client.responses.create``.

The request is translated to the canonical conversation and on to OpenAI's chat shape,
routed like any chat completion (failover, breakers, mid-stream continuation), and the
answer translated back: a ``Response`` object, or the semantic event stream
(``response.created`` … ``response.completed``).  Errors use OpenAI's error shape.

Every answer is journaled as its ``Response`` object under its ``resp_`` id (endpoint
``responses``), which is what ``previous_response_id`` reads back: the earlier turns of
the chain (their ``input`` and ``output``, not their ``instructions``) go before the new
input.  Without a journal, ``previous_response_id`` is a 400.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson

from standby.canonical.chat import Message
from standby.errors import ClientError, InvalidRequest, JournalUnavailable, StandbyError
from standby.journal.events import new_request_id
from standby.journal.service import JournalService
from standby.plan.model import StorePolicy
from standby.routing.attempts import AttemptPlan, journal_attempts
from standby.routing.policy import ResolvedRoute
from standby.routing.router import Router
from standby.routing.sink import JournalSink, NullJournal
from standby.routing.streams import OnDisconnect
from standby.translate.openai import delta_from_openai, request_to_openai, response_from_openai
from standby.translate.responses import (
    new_response_id,
    request_from_responses,
    response_to_responses,
    turn_messages,
)
from standby.translate.responses_stream import EventEncoder
from standby.web import errors
from standby.web.asgi import (
    ClientGone,
    Receive,
    Scope,
    Send,
    read_body,
    respond,
    standby_headers,
    stream_response,
    with_request_id,
)
from standby.web.clients import ClientKeys, stored

log = logging.getLogger("standby.web")

MAX_CHAIN = 100  # earlier turns a previous_response_id may bring along
FLUSH_WAIT = 2.0  # seconds for the journal database to catch up before a chain is read


class ResponseNotFound(ClientError):
    """``previous_response_id`` names no stored response (404, as OpenAI answers)."""

    status = 404
    code = "previous_response_not_found"


class _AsResponse:
    """A journal sink recording the answer as a ``Response`` under its ``resp_`` id.

    The stream engine journals a ``chat.completion``; this converts it on the way, so a
    streamed answer is stored in the same shape as a non-streamed one.
    """

    def __init__(
        self, inner: JournalSink, response_id: str, body: dict[str, Any], created_at: int
    ) -> None:
        self.inner = inner
        self.response_id = response_id
        self.body = body
        self.created_at = created_at

    def accepted(
        self,
        rid: str,
        *,
        endpoint: str,
        route: str,
        model: str,
        stream: bool,
        raw_body: bytes,
        metadata: dict[str, Any] | None,
        store: bool,
        client: str | None = None,
    ) -> None:
        self.inner.accepted(
            rid,
            endpoint=endpoint,
            route=route,
            model=model,
            stream=stream,
            raw_body=raw_body,
            metadata=metadata,
            store=store,
            client=client,
        )

    def delta(self, rid: str, text: str) -> None:
        self.inner.delta(rid, text)

    def completed(
        self,
        rid: str,
        *,
        completion_id: str,
        provider: str,
        model: str,
        response: bytes | dict[str, Any],
        usage: dict[str, Any] | None,
        attempts: Sequence[tuple[str, str, float]],
    ) -> None:
        data = orjson.loads(response) if isinstance(response, bytes) else response
        answer = self.answer(data, model)
        self.inner.completed(
            rid,
            completion_id=self.response_id,
            provider=provider,
            model=model,
            response=answer,
            usage=usage,
            attempts=attempts,
        )

    def answer(self, completion: dict[str, Any], model: str) -> dict[str, Any]:
        """A ``chat.completion`` → this request's ``Response`` object."""
        return response_to_responses(
            response_from_openai(completion),
            id=self.response_id,
            model=model,
            request=self.body,
            created_at=self.created_at,
        )

    def failed(
        self, rid: str, *, status: int, response: bytes, attempts: Sequence[tuple[str, str, float]]
    ) -> None:
        self.inner.failed(rid, status=status, response=response, attempts=attempts)

    def client_gone(
        self,
        rid: str,
        *,
        completion_id: str,
        provider: str,
        model: str,
        sent: str,
        attempts: Sequence[tuple[str, str, float]],
    ) -> None:
        self.inner.client_gone(
            rid,
            completion_id=self.response_id,  # the id the client saw
            provider=provider,
            model=model,
            sent=sent,
            attempts=attempts,
        )

    def deferred(self, rid: str, *, until: float, callback: str | None) -> None:
        self.inner.deferred(rid, until=until, callback=callback)


class StoredTurns:
    """Earlier answers of this wire, read back from the journal (``JournalStore``)."""

    def __init__(self, service: JournalService) -> None:
        self.service = service

    async def get(
        self, response_id: str, owner: str | None
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """``(request body, Response object)`` of ``response_id`` if ``owner`` may see it."""
        try:
            found = await self.service.store.get_response(response_id, owner=owner)
        except Exception as exc:  # the database is away: say so, never a false 404
            raise JournalUnavailable(
                f"the journal database did not answer ({type(exc).__name__})"
            ) from exc
        if found is None:
            return None
        if found.request is None or found.response is None:
            raise InvalidRequest(
                "previous_response_id cannot be served: this gateway's "
                "journal redacts bodies; send the whole conversation as "
                "input.",
                param="previous_response_id",
            )
        return found.request, found.response


class ResponsesWire:
    """The handler for ``POST /v1/responses``."""

    def __init__(
        self,
        router: Router,
        keys: ClientKeys,
        max_body: int,
        *,
        service: JournalService | None = None,
        store: StorePolicy = "on_request",
        on_disconnect: OnDisconnect = "cancel",
    ) -> None:
        self.router = router
        self.keys = keys
        self.max_body = max_body
        self.journal: JournalSink = service.journal if service is not None else NullJournal()
        self.turns = StoredTurns(service) if service is not None else None
        self.store = store
        self.on_disconnect: OnDisconnect = on_disconnect  # a client leaving mid-stream

    async def responses(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = ""
        plan: AttemptPlan | None = None
        try:
            caller = self.keys.identify(scope)
            raw = await read_body(scope, receive, self.max_body)
            body = _parse(raw)
            route = self.router.resolve(body["model"])
            history = await self._history(body.get("previous_response_id"), caller.owner)
            openai_body = request_to_openai(request_from_responses(body, history))
            rid = new_request_id()
            metadata = body.get("metadata")
            self.journal.accepted(
                rid,
                endpoint="responses",
                route=route.name,
                model=body["model"],
                stream=body.get("stream") is True,
                raw_body=raw,
                metadata=metadata if isinstance(metadata, dict) else None,
                # OpenAI stores a response unless the request says store: false
                store=stored(
                    caller,
                    self.router.route_config(route).store,
                    self.store,
                    body.get("store"),
                    default=True,
                ),
                client=caller.name,
            )
            sink = _AsResponse(self.journal, new_response_id(), body, int(time.time()))
            if body.get("stream") is True:
                await self._stream(rid, sink, openai_body, route, receive, send)
                return
            plan = self.router.attempt_plan(route)
            done = await self.router.complete("chat", openai_body, route, plan)
        except ClientGone:
            return
        except StandbyError as error:
            await self._fail(rid, plan, error, send)
            return
        model = done.reply.model or done.target.model
        answer = sink.answer(done.reply.data, model)
        self.journal.completed(
            rid,
            completion_id=sink.response_id,
            provider=done.target.provider,
            model=model,
            response=answer,
            usage=done.reply.usage,
            attempts=journal_attempts(done.history),
        )
        await respond(
            send,
            200,
            orjson.dumps(answer),
            headers=standby_headers(done.target.provider, model, done.attempts, route.name, rid),
        )

    async def retrieve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /v1/responses/{id}``: a stored response of this caller's, or 404."""
        response_id = scope["path"].split("/responses/", 1)[1]
        try:
            caller = self.keys.identify(scope, admin=True)
            if self.turns is None:
                raise ResponseNotFound(
                    f"Response with id '{response_id}' not found (the journal is off).",
                    code="not_found",
                )
            await self.turns.service.flush(FLUSH_WAIT)
            found = await self.turns.get(response_id, caller.owner)
            if found is None:
                raise ResponseNotFound(
                    f"Response with id '{response_id}' not found.", code="not_found"
                )
        except StandbyError as error:
            await self._fail("", None, error, send)
            return
        await respond(send, 200, orjson.dumps(found[1]))

    async def _history(self, previous: Any, owner: str | None) -> list[Message]:
        """The turns of a ``previous_response_id`` chain, oldest first."""
        if not previous:
            return []
        if self.turns is None:
            raise InvalidRequest(
                "previous_response_id needs the journal, which is switched "
                "off on this gateway; send the whole conversation as input.",
                param="previous_response_id",
            )
        await self.turns.service.flush(FLUSH_WAIT)  # read-your-writes: the last turn too
        turns: list[list[Message]] = []
        wanted: Any = previous
        while isinstance(wanted, str) and wanted:
            if len(turns) >= MAX_CHAIN:
                raise InvalidRequest(
                    f"The chain of previous responses is longer than {MAX_CHAIN} turns.",
                    param="previous_response_id",
                )
            turn = await self.turns.get(wanted, owner)
            if turn is None:
                raise ResponseNotFound(
                    f"Previous response with id '{wanted}' not found.", param="previous_response_id"
                )
            turns.append(turn_messages(*turn))
            wanted = turn[0].get("previous_response_id")
        return [message for turn_ in reversed(turns) for message in turn_]

    async def _stream(
        self,
        rid: str,
        sink: _AsResponse,
        body: dict[str, Any],
        route: ResolvedRoute,
        receive: Receive,
        send: Send,
    ) -> None:
        run = self.router.stream(
            body, route, journal=sink, rid=rid, on_disconnect=self.on_disconnect
        )
        try:
            target = await run.start()  # failures up to the first content are plain failovers
        except StandbyError as error:
            await self._fail(rid, run.plan, error, send)
            return
        encoder = EventEncoder(
            id=sink.response_id, model=target.model, request=sink.body, created_at=sink.created_at
        )

        def translate(data: bytes) -> bytes:
            if run.target is not None:
                encoder.model = run.target.model  # after a continuation: who finished
            return _translate(encoder, data)

        headers = standby_headers(
            target.provider, target.model, run.plan.attempts + 1, route.name, rid
        )
        await stream_response(
            send,
            headers,
            run,
            translate=translate,
            prelude=encoder.start(),
            receive=receive,
        )

    async def _fail(
        self, rid: str, plan: AttemptPlan | None, error: StandbyError, send: Send
    ) -> None:
        status, body, headers = errors.render(error)
        if isinstance(error, JournalUnavailable):
            status = 503
            body = errors.error_body(
                f"previous_response_id could not be read: {error}",
                type="server_error",
                param="previous_response_id",
                code="journal_unavailable",
            )
        if status >= 500:
            log.warning("responses request failed: %s", error)
        if rid:
            self.journal.failed(
                rid,
                status=status,
                response=body,
                attempts=journal_attempts(plan.history if plan else []),
            )
        await respond(send, status, body, headers=with_request_id(headers, rid))


def _translate(encoder: EventEncoder, data: bytes) -> bytes:
    """OpenAI SSE events from the stream engine (one or several) → Responses events."""
    out: list[bytes] = []
    for event in data.split(b"\n\n"):
        payload = event.strip().removeprefix(b"data:").strip()
        if not payload:
            continue
        if payload == b"[DONE]":
            out.append(encoder.finish())
            continue
        chunk = orjson.loads(payload)
        if "error" in chunk:
            error = chunk.get("error") or {}
            out.append(encoder.fail(str(error.get("message") or "The answer was interrupted.")))
            continue
        out.extend(encoder.feed(delta) for delta in delta_from_openai(chunk))
    return b"".join(out)


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. The OpenAI "
            "API expects a JSON payload."
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    data = body.get("input")
    if not (isinstance(data, str) and data) and not (isinstance(data, list) and data):
        raise InvalidRequest(
            "Missing required parameter: 'input' (a string or a non-empty array of input items).",
            param="input",
        )
    for key, kind in (
        ("stream", bool),
        ("store", bool),
        ("instructions", str),
        ("tools", list),
        ("metadata", dict),
        ("previous_response_id", str),
    ):
        if body.get(key) is not None and not isinstance(body[key], kind):
            raise InvalidRequest(f"Invalid type for '{key}': expected {kind.__name__}.", param=key)
    return body
