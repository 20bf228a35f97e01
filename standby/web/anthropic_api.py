"""The Anthropic wire: ``POST /v1/messages`` for callers using the ``anthropic`` SDK.

The request is translated to the canonical conversation and on to OpenAI's shape, routed
like any chat completion (so an Anthropic caller can fail over to OpenAI or Gemini
targets, with continuation mid-stream), and the answer is translated back: a ``message``
object, or the ``message_start`` … ``message_stop`` event stream.  Errors use Anthropic's
shape: ``{"type": "error", "error": {"type": …, "message": …}}``.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson

from standby.canonical.chat import ChatRequest
from standby.errors import Exhausted, InvalidRequest, StandbyError
from standby.journal.events import new_request_id
from standby.routing.attempts import AttemptPlan, journal_attempts
from standby.routing.policy import ResolvedRoute
from standby.routing.router import Router
from standby.routing.sink import JournalSink, NullJournal
from standby.routing.streams import OnDisconnect
from standby.translate.anthropic import request_from_anthropic, response_to_anthropic
from standby.translate.anthropic_stream import EventEncoder
from standby.translate.openai import (
    delta_from_openai,
    request_to_openai,
    response_from_openai,
)
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
from standby.web.clients import ClientKeys

log = logging.getLogger("standby.web")

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def anthropic_error(status: int, message: str) -> bytes:
    """An error body in Anthropic's shape: ``{"type": "error", "error": {…}}``."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


class AnthropicWire:
    """The handler of ``POST /v1/messages``."""

    def __init__(
        self,
        router: Router,
        keys: ClientKeys,
        max_body: int,
        *,
        journal: JournalSink | None = None,
        on_disconnect: OnDisconnect = "cancel",
    ) -> None:
        self.router = router
        self.keys = keys
        self.max_body = max_body
        self.journal: JournalSink = journal or NullJournal()
        self.on_disconnect: OnDisconnect = on_disconnect  # a client leaving mid-stream

    async def messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One Messages API request, answered as a ``message`` or an event stream."""
        rid = ""
        plan: AttemptPlan | None = None
        try:
            caller = self.keys.identify(scope)
            raw = await read_body(scope, receive, self.max_body)
            body = _parse(raw)
            canonical = _canonical(body)
            openai_body = request_to_openai(canonical)
            route = self.router.resolve(canonical.model)
            rid = new_request_id()
            self.journal.accepted(
                rid,
                endpoint="messages",
                route=route.name,
                model=canonical.model,
                stream=canonical.stream,
                raw_body=raw,
                metadata=None,
                store=False,  # the Messages API serves nothing back; the journal keeps it
                client=caller.name,
            )
            if canonical.stream:
                await self._stream(rid, openai_body, route, receive, send)
                return
            plan = self.router.attempt_plan(route)
            done = await self.router.complete("chat", openai_body, route, plan)
        except ClientGone:
            return
        except StandbyError as error:
            await self._fail(rid, plan, error, send)
            return
        response = response_from_openai(done.reply.data)
        model = done.reply.model or done.target.model
        answer = response_to_anthropic(response, id=_message_id(response.id), model=model)
        self.journal.completed(
            rid,
            completion_id=answer["id"],
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
            target = await run.start()
        except StandbyError as error:
            await self._fail(rid, run.plan, error, send)
            return
        headers = standby_headers(
            target.provider, target.model, run.plan.attempts + 1, route.name, rid
        )
        encoder = EventEncoder(id=_message_id(run.stream_id), model=target.model)
        await stream_response(
            send,
            headers,
            run,
            translate=lambda data: _translate(encoder, data),
            receive=receive,
        )

    async def _fail(
        self, rid: str, plan: AttemptPlan | None, error: StandbyError, send: Send
    ) -> None:
        status, openai_body, headers = errors.render(error)
        message = str(error)
        try:
            message = orjson.loads(openai_body)["error"]["message"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            pass
        if isinstance(error, Exhausted):
            status = 529  # what Anthropic's own clients expect for "overloaded, retry"
        body = anthropic_error(status, message)
        if rid:
            self.journal.failed(
                rid,
                status=status,
                response=body,
                attempts=journal_attempts(plan.history if plan else []),
            )
        await respond(send, status, body, headers=with_request_id(headers, rid))


def _translate(encoder: EventEncoder, data: bytes) -> bytes:
    """OpenAI SSE events from the stream engine (one or several) → Anthropic SSE events."""
    out: list[bytes] = []
    for event in data.split(b"\n\n"):
        payload = event.removeprefix(b"data: ").strip()
        if not payload:
            continue
        if payload == b"[DONE]":
            out.append(encoder.finish())
            continue
        chunk = orjson.loads(payload)
        if "error" in chunk:
            error = chunk.get("error") or {}
            kind = (
                "overloaded_error" if error.get("code") == "upstream_unavailable" else "api_error"
            )
            out.append(EventEncoder.error(kind, str(error.get("message") or "interrupted")))
            continue
        out.extend(encoder.feed(delta) for delta in delta_from_openai(chunk))
    return b"".join(out)


def _parse(raw: bytes) -> dict[str, Any]:
    """The body as a dict, checked as far as the Messages API requires."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest("max_tokens: Field required (a positive integer)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: Field required (a non-empty list)")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{index}.role: Input should be 'user' or 'assistant'")
    return body


def _canonical(body: dict[str, Any]) -> ChatRequest:
    try:
        return request_from_anthropic(body)
    except (AttributeError, TypeError, ValueError) as exc:  # a block of the wrong shape
        raise InvalidRequest(f"messages: a content block is malformed ({exc})") from None


def _message_id(source: str) -> str:
    """Anthropic ids start with ``msg_``; other vendors' ids are replaced."""
    return source if source.startswith("msg_") else f"msg_{uuid.uuid4().hex[:24]}"
