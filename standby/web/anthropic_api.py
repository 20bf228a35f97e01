"""The Anthropic wire: ``POST /v1/messages`` for callers using the ``anthropic`` SDK.

The request pipeline (``web.pipeline``) with Anthropic's formats: the request is
translated to the canonical conversation and on to OpenAI's shape, routed like any chat
completion (so an Anthropic caller can fail over to OpenAI or Gemini targets, with
continuation mid-stream), and the answer is translated back: a ``message`` object, or
the ``message_start`` … ``message_stop`` event stream.  Errors use Anthropic's shape:
``{"type": "error", "error": {"type": …, "message": …}}``, with 529 for "every target
is down".
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from standby.canonical import Reply
from standby.canonical.chat import ChatRequest
from standby.errors import Exhausted, InvalidRequest, StandbyError
from standby.routing.policy import Target
from standby.translate.anthropic import request_from_anthropic, response_to_anthropic
from standby.translate.anthropic_stream import EventEncoder
from standby.translate.openai import request_to_openai, response_from_openai
from standby.web.errors import problem
from standby.web.pipeline import Answer, Pipeline, Rendered, Request, Running, Wire

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


class AnthropicWire(Wire[Request]):
    """The handler of ``POST /v1/messages``: the pipeline with Anthropic's formats."""

    name = "messages"
    store_default = None  # the Messages API serves nothing back; the journal keeps it

    def __init__(self, pipeline: Pipeline) -> None:
        self.messages = pipeline.handler(self)

    def parse(self, raw: bytes) -> Request:
        canonical = _canonical(_parse(raw))
        return Request(raw, request_to_openai(canonical), canonical.model, stream=canonical.stream)

    def answer(self, request: Request, reply: Reply, model: str) -> Answer:
        response = response_from_openai(reply.data)
        message = response_to_anthropic(response, id=_message_id(response.id), model=model)
        return Answer(orjson.dumps(message), message, message["id"])

    def events(self, request: Request, run: Running, target: Target) -> _Events:
        return _Events(id=_message_id(run.stream_id), model=target.model)

    def error(self, error: StandbyError) -> Rendered:
        found = problem(error)
        # 529: what Anthropic's own clients expect for "overloaded, retry"
        status = 529 if isinstance(error, Exhausted) else found.status
        return status, anthropic_error(status, found.message), list(found.headers)


class _Events(EventEncoder):
    """One client stream as Anthropic's ``message_start`` … ``message_stop`` events."""

    def prelude(self) -> bytes:
        return b""  # message_start goes out with the first delta

    def interrupted(self, error: dict[str, Any]) -> bytes:
        overloaded = error.get("code") in ("upstream_unavailable", "gateway_overloaded")
        kind = "overloaded_error" if overloaded else "api_error"
        return self.error(kind, str(error.get("message") or "interrupted"))


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
