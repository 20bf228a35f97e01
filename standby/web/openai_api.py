"""The OpenAI wire: chat completions (JSON and SSE), embeddings and the model list.

Raw ASGI handlers over the router.  The caller's body is validated just enough to route
it and to give OpenAI-shaped 400s; everything else passes through to the target as is.
Every answer names who answered in ``x-standby-provider`` / ``x-standby-model`` /
``x-standby-attempts`` headers, and in the body's ``model`` (the target's own).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import orjson

from standby.canonical import Endpoint
from standby.deferred.runner import Deferral
from standby.errors import ClientError, Exhausted, InvalidRequest, StandbyError
from standby.journal.events import new_request_id
from standby.plan.model import StorePolicy
from standby.routing.attempts import AttemptPlan, journal_attempts
from standby.routing.policy import ResolvedRoute
from standby.routing.router import Router
from standby.routing.sink import JournalSink, NullJournal
from standby.routing.streams import OnDisconnect
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


class Deferrals(Protocol):
    """Accepts a request nothing can serve now for later, when its route and caller allow
    (``standby.deferred.runner.DeferredRunner``)."""

    async def maybe_defer(
        self, rid: str, scope: Scope, body: dict[str, Any], route: ResolvedRoute
    ) -> Deferral | None: ...


class OpenAIWire:
    """Handlers for ``/v1/chat/completions``, ``/v1/embeddings`` and ``/v1/models``."""

    def __init__(
        self,
        router: Router,
        keys: ClientKeys,
        max_body: int,
        *,
        journal: JournalSink | None = None,
        store: StorePolicy = "on_request",
        deferrals: Deferrals | None = None,
        on_disconnect: OnDisconnect = "cancel",
    ) -> None:
        self.router = router
        self.keys = keys
        self.max_body = max_body
        self.journal: JournalSink = journal or NullJournal()
        self.store = store
        self.deferrals = deferrals
        self.on_disconnect: OnDisconnect = on_disconnect  # a client leaving mid-stream
        self.created = int(time.time())  # the models' "created": when this gateway started

    async def _body(self, scope: Scope, receive: Receive) -> tuple[bytes, dict[str, Any]]:
        raw = await read_body(scope, receive, self.max_body)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidRequest(
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                "payload.)"
            ) from None
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        return raw, body

    async def chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._serve("chat", scope, receive, send)

    async def embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._serve("embeddings", scope, receive, send)

    async def _serve(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        rid = ""
        plan: AttemptPlan | None = None
        try:
            caller = self.keys.identify(scope)
            raw, body = await self._body(scope, receive)
            if endpoint == "chat":
                _check_chat(body)
            elif "input" not in body:
                raise InvalidRequest("Missing required parameter: 'input'.", param="input")
            route = self.router.resolve(body.get("model"))
            rid = new_request_id()
            stream = endpoint == "chat" and bool(body.get("stream"))
            metadata = body.get("metadata")
            self.journal.accepted(
                rid,
                endpoint=endpoint,
                route=route.name,
                model=str(body["model"]),
                stream=stream,
                raw_body=raw,
                metadata=metadata if isinstance(metadata, dict) else None,
                store=stored(
                    caller,
                    self.router.route_config(route).store,
                    self.store,
                    body.get("store"),
                    default=False,
                ),
                client=caller.name,
            )
            if stream:
                await self._stream(rid, body, route, receive, send)
                return
            plan = self.router.attempt_plan(route)
            done = await self.router.complete(endpoint, body, route, plan)
        except ClientGone:
            return
        except Exhausted as error:
            failure: StandbyError = error
            if rid and self.deferrals is not None:
                try:
                    deferral = await self.deferrals.maybe_defer(rid, scope, body, route)
                    if deferral is not None:
                        await _accepted_for_later(send, rid, route, deferral)
                        return
                except ClientError as refused:  # e.g. a callback host the plan does not allow
                    failure = refused
            await self._fail(rid, plan, failure, send)
            return
        except StandbyError as error:
            await self._fail(rid, plan, error, send)
            return
        model = done.reply.model or done.target.model
        self.journal.completed(
            rid,
            completion_id=str(done.reply.data.get("id") or rid),
            provider=done.target.provider,
            model=model,
            response=done.reply.raw,
            usage=done.reply.usage,
            attempts=journal_attempts(done.history),
        )
        await respond(
            send,
            200,
            done.reply.raw,
            headers=standby_headers(done.target.provider, model, done.attempts, route.name, rid),
        )

    async def _fail(
        self, rid: str, plan: AttemptPlan | None, error: StandbyError, send: Send
    ) -> None:
        status, body, headers = errors.render(error)
        if status >= 500:
            log.warning("request failed: %s", error)
        if rid:
            self.journal.failed(
                rid,
                status=status,
                response=body,
                attempts=journal_attempts(plan.history if plan else []),
            )
        await respond(send, status, body, headers=with_request_id(headers, rid))

    async def models(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /v1/models``: the plan's concrete route names (a glob is no model)."""
        try:
            self.keys.identify(scope)
        except ClientError as error:
            await self._fail("", None, error, send)
            return
        data = [
            _model(name, self.created) for name in self.router.table.names() if not _is_glob(name)
        ]
        await respond(send, 200, orjson.dumps({"object": "list", "data": data}))

    async def model(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /v1/models/{id}``: a model this gateway serves (a route matches it), or 404."""
        name = scope["path"].split("/models/", 1)[1]
        try:
            self.keys.identify(scope)
            self.router.resolve(name)
        except ClientError as error:
            await self._fail("", None, error, send)
            return
        await respond(send, 200, orjson.dumps(_model(name, self.created)))

    async def _stream(
        self, rid: str, body: dict[str, Any], route: ResolvedRoute, receive: Receive, send: Send
    ) -> None:
        run = self.router.stream(
            body,
            route,
            journal=self.journal,
            rid=rid,
            on_disconnect=self.on_disconnect,
        )
        try:
            target = await run.start()  # failures up to the first content are plain failovers
        except StandbyError as error:
            await self._fail(rid, run.plan, error, send)
            return
        headers = standby_headers(
            target.provider, target.model, run.plan.attempts + 1, route.name, rid
        )
        await stream_response(send, headers, run, receive=receive)


async def _accepted_for_later(
    send: Send, rid: str, route: ResolvedRoute, deferral: Deferral
) -> None:
    """The 202 of a deferred request: where and when to look for its answer."""
    location = f"/v1/chat/completions/{deferral.completion_id}"
    await respond(
        send,
        202,
        orjson.dumps(deferral.body()),
        headers=[
            (b"location", location.encode()),
            (b"retry-after", str(deferral.retry_after).encode()),
            (b"x-standby-route", route.name.encode()),
            (b"x-request-id", rid.encode()),
        ],
    )


def _model(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "standby"}


def _is_glob(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def _check_chat(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(
            "'messages' must be a non-empty array of message objects.", param="messages"
        )
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(
                f"Invalid type for 'messages[{index}]': expected an object with a 'role'.",
                param=f"messages[{index}]",
            )
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("Invalid type for 'stream': expected a boolean.", param="stream")
    metadata = body.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and len(metadata) <= 16
        and all(
            isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512
            for k, v in metadata.items()
        )
    ):
        raise InvalidRequest(
            "Invalid 'metadata': expected an object of at most 16 string keys "
            "(up to 64 characters) and string values (up to 512 characters).",
            param="metadata",
        )
    stop = body.get("stop")
    if (
        stop is not None
        and not isinstance(stop, str)
        and not (isinstance(stop, list) and all(isinstance(item, str) for item in stop))
    ):
        raise InvalidRequest(
            "Invalid type for 'stop': expected a string or an array of strings.", param="stop"
        )
    n = body.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128):
        raise InvalidRequest("Invalid value for 'n': expected an integer from 1 to 128.", param="n")
