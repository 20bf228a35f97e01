"""Google's Gemini API on the simulated provider.

``POST /v1beta/models/{model}:generateContent`` and
``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``, the key in an
``x-goog-api-key`` header or a ``key`` query parameter. Every shape follows the public
Gemini API reference, read independently of the gateway's translators (nothing here
comes from ``standby.translate``): "Generating content" (``GenerateContentRequest``,
``GenerateContentResponse`` with its ``Candidate``, ``PromptFeedback`` and
``UsageMetadata``; a stream is one response per SSE ``data:`` event, ended by closing the
connection, no ``[DONE]``) and "Troubleshooting" (``{"error": {"code", "message",
"status"}}``, each HTTP status with its ``google.rpc`` status name). Request fields are
read by their JSON (``systemInstruction``) or proto (``system_instruction``) names, as
the API accepts both.

The request is reduced to the role/text pairs ``answers`` plans with (``conversation``),
so the text, the continuation rule, ``overlap`` and the tool call are those of the
OpenAI wire: a final ``model`` turn is a prefill (a 400 when ``accepts_prefill`` is
False). A stream sends one response per word (a function call whole, in one), then a
last one with an empty text part, ``finishReason`` and ``usageMetadata``;
``maxOutputTokens`` truncates a text answer with ``MAX_TOKENS``. Faults, in this wire's
shape:

* ``rate_limit`` 429 ``RESOURCE_EXHAUSTED`` (a ``RetryInfo`` detail when the fault sets
  ``retry_after``); ``error`` 500 ``INTERNAL`` (503 ``UNAVAILABLE``, other statuses by
  the table); ``flap`` as ``error`` 503.
* ``context_length`` and ``reject_prefill``: 400 ``INVALID_ARGUMENT``; ``auth``: 403
  ``PERMISSION_DENIED`` (400: ``API key not valid`` with an ``API_KEY_INVALID`` detail,
  as Google answers a bad key; 401 ``UNAUTHENTICATED``).
* ``content_policy``: how Gemini blocks, a 200 whose ``promptFeedback.blockReason`` is
  ``SAFETY``, without candidates (one SSE event when streamed).
* ``error_body_200``: a 200 carrying an ``INTERNAL`` error object (one SSE event when
  streamed); ``html``: the HTML error page.
* ``no_done`` (and ``no_done_no_finish``): the stream ends without its ``finishReason``
  response; cuts, stalls, malformed events, delays and resets as on the OpenAI wire.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import orjson
from aiohttp import web

from standby.sim import answers
from standby.sim.faults import Fault, Shape, before_answer, send_body, send_stream
from standby.sim.host import SimHost

CONTEXT_WINDOW = 1_048_576
_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES = {  # by status name
    "INVALID_ARGUMENT": "Request contains an invalid argument.",
    "UNAUTHENTICATED": "Request had invalid authentication credentials.",
    "PERMISSION_DENIED": "The caller does not have permission",
    "NOT_FOUND": "Requested entity was not found.",
    "RESOURCE_EXHAUSTED": "Resource has been exhausted (e.g. check quota).",
    "INTERNAL": "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    "UNIMPLEMENTED": "Operation is not implemented, or supported, or enabled.",
    "UNAVAILABLE": "The model is overloaded. Please try again later.",
    "DEADLINE_EXCEEDED": "Deadline expired before operation could complete.",
    "UNKNOWN": "Unknown error (simulated).",
}
PREFILL_MESSAGE = (
    "Please ensure that multiturn requests end with a user role or a function response."
)
_BY_KIND = {  # fault kind: (default status, message when it says more than the status)
    "rate_limit": (429, ""),
    "context_length": (
        400,
        "The input token count ({tokens}) exceeds the maximum number of "
        f"tokens allowed ({CONTEXT_WINDOW}).",
    ),
    "reject_prefill": (400, PREFILL_MESSAGE),
    "auth": (403, ""),
}
_BAD_KEY = "API key not valid. Please pass a valid API key."
_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established "
    "identity). Please use API Key or other form of API consumer identity to call "
    "this API."
)
_SNAKE = re.compile(r"[A-Z]")


class GeminiWire:
    """The Gemini ``generateContent`` methods of one sim, sharing its faults."""

    def __init__(self, sim: SimHost) -> None:
        self.sim = sim

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the provider's application."""
        return [web.post("/v1beta/models/{call}", self.generate)]

    async def generate(self, request: web.Request) -> web.StreamResponse:
        """``{model}:generateContent`` (JSON) or ``{model}:streamGenerateContent`` (SSE)."""
        sim = self.sim
        model, _, method = request.match_info["call"].rpartition(":")
        if not model or method not in ("generateContent", "streamGenerateContent"):
            return error_response(404, f"Method {method or '(none)'} not found for {model}.")
        stream = method == "streamGenerateContent"
        body, valid = await _read_json(request)
        plan = conversation(body)
        answer = answers.plan_answer(plan, sim.words, sim.overlap)
        prefill = answers.ends_with_prefill(plan)
        try:
            fault = sim.select(request, body, Shape(stream, answer.tool is not None, prefill))
        except ValueError as exc:
            return error_response(400, str(exc))
        if fault.kind == "no_done":  # no end marker on this wire: leave out the finish
            fault = dataclasses.replace(fault, kind="no_done_no_finish")
        if not await before_answer(request, fault, sim.holds, stream):
            return web.Response()
        prompt, response_id = answers.prompt_tokens(plan), f"sim_{sim.next_id()}"
        stamp = {"modelVersion": model, "responseId": response_id}
        if fault.kind == "content_policy":
            return blocked(fault, stream, prompt, stamp)
        if fault.kind in answers.ERROR_KINDS:
            return fault_response(fault, stream, prompt)
        if problem := _problem(request, body, valid, stream):
            return problem
        if prefill and not sim.accepts_prefill:
            return error_response(400, PREFILL_MESSAGE)
        pieces, finish = answer.pieces, "STOP"
        limit = field(field(body, "generationConfig"), "maxOutputTokens")
        if not answer.tool and type(limit) is int and 0 < limit < len(pieces):
            pieces, finish = pieces[:limit], "MAX_TOKENS"
        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": len(pieces),
            "totalTokenCount": prompt + len(pieces),
        }
        if not stream:
            parts = _parts(answer.tool, "".join(pieces))
            payload = orjson.dumps(response(parts, stamp, finish, usage))
            return await send_body(request, payload, fault, sim.holds)
        events = stream_events(answer.tool, pieces, stamp, finish, usage)
        return await send_stream(request, events, fault, sim.holds, sim.chunk_delay)


def field(data: Any, name: str) -> Any:
    """A request field by its JSON (lowerCamel) name or its proto (snake_case) name."""
    if not isinstance(data, dict):
        return None
    if name in data:
        return data[name]
    return data.get(_SNAKE.sub(lambda m: "_" + m.group().lower(), name))


def _text(content: Any) -> str:
    parts = field(content, "parts")
    if not isinstance(parts, list):
        return ""
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


def conversation(body: dict[str, Any]) -> dict[str, Any]:
    """The request as the OpenAI-shaped role/text pairs (and first tool) ``answers`` plans with.

    The system instruction leads as a ``system`` message (it counts in the prompt size);
    ``model`` turns are the assistant's; a turn carrying a ``functionResponse`` part is a
    ``tool`` message.
    """
    system = _text(field(body, "systemInstruction"))
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    contents = field(body, "contents")
    for content in contents if isinstance(contents, list) else []:
        parts = field(content, "parts")
        role = {"model": "assistant", "function": "tool"}.get(str(field(content, "role")), "user")
        if isinstance(parts, list) and any(field(p, "functionResponse") for p in parts):
            role = "tool"
        messages.append({"role": role, "content": _text(content)})
    plan: dict[str, Any] = {"messages": messages}
    if name := _function_name(body):
        plan["tools"] = [{"type": "function", "function": {"name": name}}]
    return plan


def _function_name(body: dict[str, Any]) -> str | None:
    """The first declared function, unless the function-calling mode is ``NONE``."""
    config = field(field(body, "toolConfig"), "functionCallingConfig")
    tools = field(body, "tools")
    if field(config, "mode") == "NONE" or not isinstance(tools, list):
        return None
    for tool in tools:
        declarations = field(tool, "functionDeclarations")
        if isinstance(declarations, list) and declarations:
            return str(field(declarations[0], "name") or "tool")
    return None


def _parts(tool: str | None, text: str) -> list[dict[str, Any]]:
    if tool:
        return [{"functionCall": {"name": tool, "args": orjson.loads(answers.ARGUMENTS)}}]
    return [{"text": text}]


def response(
    parts: list[dict[str, Any]],
    stamp: dict[str, str],
    finish: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A ``GenerateContentResponse`` with one candidate."""
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    usage_field = {"usageMetadata": usage} if usage else {}
    return {"candidates": [candidate], **usage_field, **stamp}


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\r\n\r\n"  # Google ends events with CRLF pairs


def stream_events(
    tool: str | None, pieces: list[str], stamp: dict[str, str], finish: str, usage: dict[str, int]
) -> answers.Events:
    """The SSE events of a streamed answer, split as ``faults.send_stream`` plays them."""
    if tool:
        body = [_sse(response(_parts(tool, ""), stamp))]
    else:
        body = [_sse(response([{"text": p}], stamp)) for p in pieces]
    last = _sse(response([{"text": ""}], stamp, finish, usage))
    return answers.Events(b"", body, last, b"", b"")


def error_body(status: int, message: str, details: list[dict[str, Any]] | None = None) -> bytes:
    """A Google API error object."""
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": _STATUSES.get(status, "UNKNOWN"),
    }
    return orjson.dumps({"error": {**error, **({"details": details} if details else {})}})


def error_response(
    status: int, message: str = "", details: list[dict[str, Any]] | None = None
) -> web.Response:
    """An error answer in Google's shape (the status's usual message when none is given)."""
    text = message or _MESSAGES[_STATUSES.get(status, "UNKNOWN")]
    return web.Response(
        body=error_body(status, text, details), status=status, content_type="application/json"
    )


def _one_event(status: int, data: bytes, stream: bool) -> web.Response:
    if stream:
        return web.Response(
            body=b"data: " + data + b"\r\n\r\n", status=status, content_type="text/event-stream"
        )
    return web.Response(body=data, status=status, content_type="application/json")


def blocked(fault: Fault, stream: bool, prompt: int, stamp: dict[str, str]) -> web.Response:
    """The ``content_policy`` answer: the prompt blocked for ``SAFETY``, no candidates."""
    rating = {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
    feedback = {"blockReason": "SAFETY", "safetyRatings": [rating]}
    reply = {
        "promptFeedback": feedback,
        "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt},
        **stamp,
    }
    return _one_event(fault.status or 200, orjson.dumps(reply), stream)


def fault_response(fault: Fault, stream: bool, prompt: int) -> web.Response:
    """The answer of an error fault kind (``answers.ERROR_KINDS``) in Google's shape."""
    kind = fault.kind
    if kind == "html":
        reply = answers.error_reply("html", fault.status)
        return web.Response(body=reply.body, status=reply.status, content_type="text/html")
    if kind == "error_body_200":
        return _one_event(fault.status or 200, error_body(500, _MESSAGES["INTERNAL"]), stream)
    default, text = _BY_KIND.get(kind, (500, ""))
    status = fault.status or default
    details: list[dict[str, Any]] = []
    if kind == "auth" and status == 400:
        text = _BAD_KEY
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
        )
    if fault.retry_after is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{fault.retry_after:g}s",
            }
        )
    return error_response(status, text.format(tokens=max(prompt, CONTEXT_WINDOW + 1)), details)


async def _read_json(request: web.Request) -> tuple[dict[str, Any], bool]:
    """The body as a dict, and whether it was a valid JSON object."""
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return {}, False
    return (data, True) if isinstance(data, dict) else ({}, False)


def _problem(
    request: web.Request, body: dict[str, Any], valid: bool, stream: bool
) -> web.Response | None:
    """The 403 or 400 a real Gemini endpoint gives this request, if any."""
    if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
        return error_response(403, _NO_KEY)
    if stream and request.query.get("alt") != "sse":  # the JSON-array stream is not simulated
        return error_response(400, "The simulated provider streams with alt=sse only.")
    if not valid:
        return error_response(400, "Invalid JSON payload received.")
    contents = field(body, "contents")
    if not isinstance(contents, list) or not contents:
        return error_response(400, "* GenerateContentRequest.contents: contents is not specified\n")
    return None
