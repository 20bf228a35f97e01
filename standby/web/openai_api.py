"""The OpenAI wire: chat completions (JSON and SSE), embeddings and the model list.

Chat completions and embeddings are the request pipeline (``web.pipeline``) with OpenAI's
shape passed through: the caller's body is validated just enough to route it and to give
OpenAI-shaped 400s; everything else goes to the target as is, and its reply or stream
comes back as the target sent it.  Every answer names who answered in
``x-standby-provider`` / ``x-standby-model`` / ``x-standby-attempts`` headers, and in the
body's ``model`` (the target's own).  A chat request nothing can serve now may be
accepted for later (``202``, see ``standby.deferred``).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import orjson

from standby.canonical import Endpoint
from standby.deferred.runner import Deferral
from standby.errors import ClientError, InvalidRequest
from standby.routing.policy import ResolvedRoute
from standby.web import errors
from standby.web.asgi import Receive, Scope, Send, respond
from standby.web.clients import Caller
from standby.web.pipeline import Pipeline, Rendered, Request, Wire


class Deferrals(Protocol):
    """Accepts a request nothing can serve now for later, when its route and caller allow
    (``standby.deferred.runner.DeferredRunner``)."""

    async def maybe_defer(
        self, rid: str, scope: Scope, body: dict[str, Any], route: ResolvedRoute
    ) -> Deferral | None: ...


class OpenAIWire:
    """Handlers for ``/v1/chat/completions``, ``/v1/embeddings`` and ``/v1/models``."""

    def __init__(self, pipeline: Pipeline, *, deferrals: Deferrals | None = None) -> None:
        self.router = pipeline.router
        self.pipeline = pipeline
        self.created = int(time.time())  # the models' "created": when this gateway started
        self.chat = pipeline.handler(_Completions("chat", deferrals))
        self.embeddings = pipeline.handler(_Completions("embeddings"))
        self.models = pipeline.authenticated(self._models)
        self.model = pipeline.authenticated(self._model)

    async def _models(self, caller: Caller, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /v1/models``: the plan's concrete route names (a glob is no model)."""
        data = [
            _model(name, self.created) for name in self.router.table.names() if not _is_glob(name)
        ]
        await respond(send, 200, orjson.dumps({"object": "list", "data": data}))

    async def _model(self, caller: Caller, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /v1/models/{id}``: a model this gateway serves (a route matches it), or 404."""
        name = scope["path"].split("/models/", 1)[1]
        try:
            self.router.resolve(name)
        except ClientError as error:
            await self.pipeline.refuse(errors.render, error, send)
            return
        await respond(send, 200, orjson.dumps(_model(name, self.created)))


class _Completions(Wire[Request]):
    """Chat completions or embeddings: OpenAI's own shape, passed through."""

    def __init__(self, endpoint: Endpoint, deferrals: Deferrals | None = None) -> None:
        self.name = self.endpoint = endpoint
        self.deferrals = deferrals

    def parse(self, raw: bytes) -> Request:
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
        if self.endpoint == "chat":
            _check_chat(body)
        elif "input" not in body:
            raise InvalidRequest("Missing required parameter: 'input'.", param="input")
        metadata = body.get("metadata")
        return Request(
            raw,
            body,
            body.get("model"),
            stream=self.endpoint == "chat" and bool(body.get("stream")),
            metadata=metadata if isinstance(metadata, dict) else None,
            store=body.get("store"),
        )

    async def accept_for_later(
        self, rid: str, scope: Scope, request: Request, route: ResolvedRoute
    ) -> Rendered | None:
        if self.deferrals is None:
            return None
        deferral = await self.deferrals.maybe_defer(rid, scope, request.body, route)
        return None if deferral is None else _accepted_for_later(rid, route, deferral)


def _accepted_for_later(rid: str, route: ResolvedRoute, deferral: Deferral) -> Rendered:
    """The 202 of a deferred request: where and when to look for its answer."""
    location = f"/v1/chat/completions/{deferral.completion_id}"
    return (
        202,
        orjson.dumps(deferral.body()),
        [
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
