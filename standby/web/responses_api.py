"""The Responses wire: ``POST /v1/responses`` for callers of ``client.responses.create``.

The request pipeline (``web.pipeline``) with the Responses formats: the request is
translated to the canonical conversation and on to OpenAI's chat shape, routed like any
chat completion (failover, breakers, mid-stream continuation), and the answer translated
back: a ``Response`` object, or the semantic event stream
(``response.created`` … ``response.completed``).  Errors use OpenAI's error shape.

Every answer is journaled as its ``Response`` object under its ``resp_`` id (endpoint
``responses``), which is what ``previous_response_id`` reads back: the earlier turns of
the chain (their ``input`` and ``output``, not their ``instructions``) go before the new
input.  Without a journal, ``previous_response_id`` is a 400.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from standby.canonical import Reply
from standby.canonical.chat import Delta, Message
from standby.errors import ClientError, InvalidRequest, JournalUnavailable, StandbyError
from standby.journal.service import JournalService
from standby.routing.policy import Target
from standby.routing.sink import Attempt, JournalSink, PassThrough
from standby.translate.openai import request_to_openai, response_from_openai
from standby.translate.responses import (
    new_response_id,
    request_from_responses,
    response_to_responses,
    turn_messages,
)
from standby.translate.responses_stream import EventEncoder
from standby.web import errors
from standby.web.asgi import Receive, Scope, Send, respond
from standby.web.clients import Caller
from standby.web.pipeline import Answer, Pipeline, Rendered, Request, Running, Wire

MAX_CHAIN = 100  # earlier turns a previous_response_id may bring along
FLUSH_WAIT = 2.0  # seconds for the journal database to catch up before a chain is read


class ResponseNotFound(ClientError):
    """``previous_response_id`` names no stored response (404, as OpenAI answers)."""

    status = 404
    code = "previous_response_not_found"


@dataclass(slots=True, eq=False)
class ResponsesRequest(Request):
    """A Responses request: the body as asked, and the ``Response`` it is answered with."""

    asked: dict[str, Any] = field(default_factory=dict)  # the Responses body
    response_id: str = ""  # set once the request is routed
    created_at: int = 0  # unix seconds


class ResponsesWire(Wire[ResponsesRequest]):
    """The handlers for ``POST /v1/responses`` and ``GET /v1/responses/{id}``."""

    name = "responses"
    store_default = True  # OpenAI stores a response unless the request says store: false

    def __init__(self, pipeline: Pipeline, service: JournalService | None = None) -> None:
        self.pipeline = pipeline
        self.turns = StoredTurns(service) if service is not None else None
        self.responses = pipeline.handler(self)
        self.retrieve = pipeline.authenticated(self._retrieve, self.error, admin=True)

    def parse(self, raw: bytes) -> ResponsesRequest:
        body = _parse(raw)
        metadata = body.get("metadata")
        return ResponsesRequest(
            raw,
            {},  # by ``prepare``: the earlier turns of previous_response_id go first
            body["model"],
            stream=body.get("stream") is True,
            metadata=metadata if isinstance(metadata, dict) else None,
            store=body.get("store"),
            asked=body,
        )

    async def prepare(self, request: ResponsesRequest, caller: Caller) -> None:
        history = await self._history(request.asked.get("previous_response_id"), caller.owner)
        request.body = request_to_openai(request_from_responses(request.asked, history))
        request.response_id = new_response_id()
        request.created_at = int(time.time())

    def answer(self, request: ResponsesRequest, reply: Reply, model: str) -> Answer:
        response = _as_response(request, reply.data, model)
        return Answer(orjson.dumps(response), response, request.response_id)

    def recorder(self, request: ResponsesRequest, journal: JournalSink) -> JournalSink:
        return _AsResponse(journal, request)

    def events(self, request: ResponsesRequest, run: Running, target: Target) -> _Events:
        return _Events(run, request, target.model)

    def error(self, error: StandbyError) -> Rendered:
        if isinstance(error, JournalUnavailable):
            body = errors.error_body(
                f"previous_response_id could not be read: {error}",
                type="server_error",
                param="previous_response_id",
                code="journal_unavailable",
            )
            return 503, body, []
        return errors.render(error)

    async def _retrieve(self, caller: Caller, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /v1/responses/{id}``: a stored response of this caller's, or 404."""
        response_id = scope["path"].split("/responses/", 1)[1]
        try:
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
            await self.pipeline.refuse(self.error, error, send)
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


def _as_response(
    request: ResponsesRequest, completion: dict[str, Any], model: str
) -> dict[str, Any]:
    """A ``chat.completion`` → ``request``'s ``Response`` object."""
    return response_to_responses(
        response_from_openai(completion),
        id=request.response_id,
        model=model,
        request=request.asked,
        created_at=request.created_at,
    )


class _Events(EventEncoder):
    """One client stream as the Responses events, ``response.created`` first."""

    def __init__(self, run: Running, request: ResponsesRequest, model: str) -> None:
        super().__init__(
            id=request.response_id,
            model=model,
            request=request.asked,
            created_at=request.created_at,
        )
        self.run = run

    def prelude(self) -> bytes:
        return self.start()

    def feed(self, delta: Delta) -> bytes:
        self._follow()
        return super().feed(delta)

    def finish(self) -> bytes:
        self._follow()
        return super().finish()

    def interrupted(self, error: dict[str, Any]) -> bytes:
        self._follow()
        return self.fail(str(error.get("message") or "The answer was interrupted."))

    def _follow(self) -> None:
        if self.run.target is not None:
            self.model = self.run.target.model  # after a continuation: who finished


class _AsResponse(PassThrough):
    """A journal sink recording the answer as a ``Response`` under its ``resp_`` id.

    The stream engine journals a ``chat.completion``; this converts it on the way, so a
    streamed answer is stored in the same shape as a non-streamed one.
    """

    __slots__ = ("request",)

    def __init__(self, inner: JournalSink, request: ResponsesRequest) -> None:
        super().__init__(inner)
        self.request = request

    def completed(
        self,
        rid: str,
        *,
        completion_id: str,
        provider: str,
        model: str,
        response: bytes | dict[str, Any],
        usage: dict[str, Any] | None,
        attempts: Sequence[Attempt],
    ) -> None:
        data = orjson.loads(response) if isinstance(response, bytes) else response
        self.inner.completed(
            rid,
            completion_id=self.request.response_id,
            provider=provider,
            model=model,
            response=_as_response(self.request, data, model),
            usage=usage,
            attempts=attempts,
        )

    def client_gone(
        self,
        rid: str,
        *,
        completion_id: str,
        provider: str,
        model: str,
        sent: str,
        attempts: Sequence[Attempt],
    ) -> None:
        self.inner.client_gone(
            rid,
            completion_id=self.request.response_id,  # the id the client saw
            provider=provider,
            model=model,
            sent=sent,
            attempts=attempts,
        )


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
