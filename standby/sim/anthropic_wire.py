"""Anthropic's Messages API on the simulated provider: ``POST /v1/messages``.

Every shape follows Anthropic's public API reference, read independently of the
gateway's translators (nothing here comes from ``standby.translate``): "Messages"
(the request and the ``Message`` reply), "Streaming Messages" (the SSE events, each an
``event:`` line and a ``data:`` line) and "Errors" (``{"type": "error", "error": {...}}``
and the status of each error type).

The request is reduced to the role/text pairs ``answers`` plans with (``conversation``),
so the text, the continuation rule, ``overlap`` and the tool call are those of the
OpenAI wire; ``max_tokens`` (required) truncates a text answer to that many words with
``stop_reason: "max_tokens"``. Anthropic supports assistant prefill: ``reject_prefill``
never fires here and ``accepts_prefill`` is ignored, but a final assistant turn that ends
in whitespace is refused, as upstream. Both ``x-api-key`` and ``anthropic-version`` are
required (any value). Faults, in this wire's shape:

* ``rate_limit`` 429 ``rate_limit_error``; ``error`` 500 ``api_error`` (529 and 503:
  ``overloaded_error``; other statuses by the reference's table); ``flap`` as ``error``
  503; ``Retry-After`` when the fault sets one.
* ``context_length`` 400 ``prompt is too long: N tokens > 200000 maximum``;
  ``content_policy`` 400 about the usage policy; ``auth`` 401 ``authentication_error``
  (403 ``permission_error``, 402 ``billing_error``).
* ``error_body_200``: a 200 carrying an ``overloaded_error``, as JSON or as one SSE
  ``error`` event; ``html``: the HTML error page.
* ``no_done``: no ``message_stop``; ``no_done_no_finish``: neither ``content_block_stop``
  nor ``message_delta`` either; cuts, stalls, malformed events, delays and resets as
  on the OpenAI wire (``faults``), a cut tool call inside its ``input_json_delta``s.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from standby.sim import answers
from standby.sim.faults import Fault, Shape, before_answer, send_body, send_stream
from standby.sim.host import SimHost

TOOL_USE_ID = "toolu_sim_1"
CONTEXT_WINDOW = 200_000
_TYPES = {
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
_MESSAGES = {  # by error type
    "invalid_request_error": "Invalid request (simulated).",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found (simulated).",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "This request would exceed the rate limit for your organization "
    "(simulated). Please try again later.",
    "api_error": "Internal server error",
    "overloaded_error": "Overloaded",
}
_BY_KIND = {  # fault kind: (status, message) where the kind says more than its status
    "context_length": (400, "prompt is too long: {tokens} tokens > 200000 maximum"),
    "content_policy": (
        400,
        "This request was blocked: it appears to violate our Usage Policy "
        "(output blocked by content filtering policy).",
    ),
    "rate_limit": (429, ""),
    "auth": (401, ""),
}


class AnthropicWire:
    """The Messages endpoint of one sim, sharing its faults and records."""

    def __init__(self, sim: SimHost) -> None:
        self.sim = sim

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the provider's application."""
        return [web.post("/v1/messages", self.messages)]

    async def messages(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/messages``: a ``Message``, or its SSE events with ``"stream": true``."""
        sim = self.sim
        body, valid = await _read_json(request)
        plan = conversation(body)
        answer = answers.plan_answer(plan, sim.words, sim.overlap)
        stream = body.get("stream") is True
        try:  # prefill is a supported feature here: the shape never says "prefill"
            fault = sim.select(request, body, Shape(stream, answer.tool is not None))
        except ValueError as exc:
            return error_response(400, "invalid_request_error", str(exc))
        if not await before_answer(request, fault, sim.holds, stream):
            return web.Response()
        prompt = answers.prompt_tokens(plan)
        if fault.kind in answers.ERROR_KINDS:
            return fault_response(fault, stream, prompt)
        if problem := _problem(request, body, valid):
            return problem
        pieces, stop = answer.pieces, "tool_use" if answer.tool else "end_turn"
        if not answer.tool and body["max_tokens"] < len(pieces):
            pieces, stop = pieces[: body["max_tokens"]], "max_tokens"
        reply = message(
            f"msg_sim_{sim.next_id()}", str(body["model"]), answer.tool, pieces, stop, prompt
        )
        if not stream:
            return await send_body(request, orjson.dumps(reply), fault, sim.holds)
        events = stream_events(reply, answer.tool, pieces)
        return await send_stream(request, events, fault, sim.holds, sim.chunk_delay)


def conversation(body: dict[str, Any]) -> dict[str, Any]:
    """The request as the OpenAI-shaped role/text pairs (and first tool) ``answers`` plans with.

    The system prompt leads as a ``system`` message (it counts in the prompt size); a
    user turn carrying a ``tool_result`` block becomes a ``tool`` message.
    """
    system = block_text(body.get("system"))
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    raw = body.get("messages")
    for turn in raw if isinstance(raw, list) else []:
        if not isinstance(turn, dict):
            continue
        content, role = turn.get("content"), turn.get("role")
        blocks = content if isinstance(content, list) else []
        if role == "user" and any(_kind(b) == "tool_result" for b in blocks):
            role = "tool"
        messages.append({"role": role, "content": block_text(content)})
    plan: dict[str, Any] = {"messages": messages}
    if name := _tool_name(body):
        plan["tools"] = [{"type": "function", "function": {"name": name}}]
    return plan


def block_text(content: Any) -> str:
    """A content string, or the text of its ``text`` blocks, concatenated."""
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content if _kind(b) == "text")
    return content if isinstance(content, str) else ""


def _kind(block: Any) -> Any:
    return block.get("type") if isinstance(block, dict) else None


def _tool_name(body: dict[str, Any]) -> str | None:
    """The tool to call: the first one, the one ``tool_choice`` names, or none."""
    tools, choice = body.get("tools"), body.get("tool_choice")
    if not isinstance(tools, list) or not tools or _kind(choice) == "none":
        return None
    if isinstance(choice, dict) and choice.get("type") == "tool" and choice.get("name"):
        return str(choice["name"])
    first = tools[0].get("name") if isinstance(tools[0], dict) else None
    return str(first or "tool")


def message(
    msg_id: str, model: str, tool: str | None, pieces: list[str], stop: str, prompt: int
) -> dict[str, Any]:
    """A complete ``Message``: one text block or one ``tool_use`` block."""
    if tool:
        block = {
            "type": "tool_use",
            "id": TOOL_USE_ID,
            "name": tool,
            "input": orjson.loads(answers.ARGUMENTS),
        }
    else:
        block = {"type": "text", "text": "".join(pieces)}
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [block],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": prompt, "output_tokens": len(pieces)},
    }


def _event(name: str, data: dict[str, Any]) -> bytes:
    payload = orjson.dumps({"type": name, **data})
    return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"


def stream_events(reply: dict[str, Any], tool: str | None, pieces: list[str]) -> answers.Events:
    """The SSE events of ``reply``, split as ``faults.send_stream`` plays them.

    ``head``: ``message_start`` (no content yet), ``content_block_start``, ``ping``;
    ``body``: one ``content_block_delta`` per word or argument slice; ``finish``:
    ``content_block_stop`` and ``message_delta``; ``done``: ``message_stop``.
    """
    usage = {"input_tokens": reply["usage"]["input_tokens"], "output_tokens": 1}
    start = {**reply, "content": [], "stop_reason": None, "usage": usage}
    if tool:
        block: dict[str, Any] = {"type": "tool_use", "id": TOOL_USE_ID, "name": tool, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
    else:
        block, deltas = (
            {"type": "text", "text": ""},
            [{"type": "text_delta", "text": p} for p in pieces],
        )
    head = (
        _event("message_start", {"message": start})
        + _event("content_block_start", {"index": 0, "content_block": block})
        + _event("ping", {})
    )
    body = [_event("content_block_delta", {"index": 0, "delta": d}) for d in deltas]
    delta = {"stop_reason": reply["stop_reason"], "stop_sequence": None}
    finish = _event("content_block_stop", {"index": 0}) + _event(
        "message_delta", {"delta": delta, "usage": {"output_tokens": len(pieces)}}
    )
    return answers.Events(head, body, finish, b"", _event("message_stop", {}))


def error_body(type_: str, message_: str) -> bytes:
    """An Anthropic error object."""
    return orjson.dumps({"type": "error", "error": {"type": type_, "message": message_}})


def error_response(
    status: int, type_: str, message_: str, retry_after: float | None = None
) -> web.Response:
    """An error answer in Anthropic's shape."""
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    return web.Response(
        body=error_body(type_, message_),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def fault_response(fault: Fault, stream: bool, prompt: int) -> web.Response:
    """The answer of an error fault kind (``answers.ERROR_KINDS``) in Anthropic's shape."""
    kind = fault.kind
    if kind == "html":
        reply = answers.error_reply("html", fault.status)
        return web.Response(body=reply.body, status=reply.status, content_type="text/html")
    if kind == "error_body_200":
        status, body = fault.status or 200, error_body("overloaded_error", "Overloaded")
        if stream:  # an error after the 200: Anthropic's mid-stream ``error`` event
            return web.Response(
                body=b"event: error\ndata: " + body + b"\n\n",
                status=status,
                content_type="text/event-stream",
            )
        return web.Response(body=body, status=status, content_type="application/json")
    default, text = _BY_KIND.get(kind, (500, ""))
    status = fault.status or default
    type_ = _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    text = (text or _MESSAGES[type_]).format(tokens=max(prompt, CONTEXT_WINDOW + 1))
    return error_response(status, type_, text, fault.retry_after)


async def _read_json(request: web.Request) -> tuple[dict[str, Any], bool]:
    """The body as a dict, and whether it was a valid JSON object."""
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return {}, False
    return (data, True) if isinstance(data, dict) else ({}, False)


def _problem(request: web.Request, body: dict[str, Any], valid: bool) -> web.Response | None:
    """The 401 or 400 a real Messages endpoint gives this request, if any."""
    if not request.headers.get("x-api-key"):
        return error_response(401, "authentication_error", "x-api-key header is required")
    if not request.headers.get("anthropic-version"):
        return error_response(400, "invalid_request_error", "anthropic-version: header is required")
    if not valid:
        return error_response(
            400,
            "invalid_request_error",
            "There was an error parsing the body: expected a JSON object.",
        )
    turns = body.get("messages")
    missing = [
        name
        for name, ok in (
            ("model", isinstance(body.get("model"), str)),
            ("max_tokens", type(body.get("max_tokens")) is int and body["max_tokens"] >= 1),
            ("messages", isinstance(turns, list) and bool(turns)),
        )
        if not ok
    ]
    if missing:
        return error_response(400, "invalid_request_error", f"{missing[0]}: Field required")
    last = turns[-1] if isinstance(turns, list) else None
    if isinstance(last, dict) and last.get("role") == "assistant":
        text = block_text(last.get("content"))
        if text != text.rstrip():
            return error_response(
                400,
                "invalid_request_error",
                "messages: final assistant content cannot end with trailing whitespace",
            )
    return None
