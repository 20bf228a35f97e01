"""OpenAI Responses API JSON ↔ the canonical conversation (requests and answers).

The ``/v1/responses`` wire accepts Responses requests from callers whose answers may come
from any vendor: ``request_from_responses`` turns one into a canonical ``ChatRequest``
(``instructions`` → a system message first, then the earlier turns of a
``previous_response_id`` chain, then ``input``), and ``response_to_responses`` turns a
canonical answer into a ``Response`` object.  Stream events live in
``responses_stream``.

Shapes follow the installed ``openai`` SDK's models (``openai.types.responses``): input
items are messages (``content`` a string or ``input_text`` / ``input_image`` /
``output_text`` parts), ``function_call`` and ``function_call_output``; tools are flat
(``{"type": "function", "name", "parameters", …}``); ``text.format`` is ``text``,
``json_object`` or a flat ``json_schema``.  Output item ids derive from the response id
(``item_id``), so a streamed answer and its journaled copy name the same items.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any, cast

from standby.canonical.chat import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    Role,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)
from standby.errors import InvalidRequest

# finish reasons that leave a Response "incomplete", with the reason OpenAI gives
INCOMPLETE: dict[str, str] = {"length": "max_output_tokens", "content_filter": "content_filter"}
_FINISH: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}
_ROLES = ("user", "assistant", "system", "developer")


def new_response_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


def item_id(response_id: str, kind: str, index: int) -> str:
    """The id of output item ``index`` (``msg`` or ``fc``) of ``response_id``."""
    return f"{kind}_{response_id.removeprefix('resp_')}_{index}"


# -- Responses → canonical -----------------------------------------------------------------


def _image(url: str, detail: Any) -> ImagePart:
    if url.startswith("data:") and ";base64," in url:
        header, data = url[5:].split(";base64,", 1)
        return ImagePart(data=data, media_type=header or None, detail=detail)
    return ImagePart(url=url, detail=detail)


def _parts(content: Any, where: str) -> tuple[Part, ...]:
    if isinstance(content, str):
        return (TextPart(content),) if content else ()
    if not isinstance(content, list):
        raise InvalidRequest(
            f"Invalid type for '{where}': expected a string or an array of content parts.",
            param=where,
        )
    parts: list[Part] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append(TextPart(str(part.get("text") or "")))
        elif kind == "refusal":
            parts.append(TextPart(str(part.get("refusal") or "")))
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            parts.append(_image(part["image_url"], part.get("detail")))
        else:
            raise InvalidRequest(
                f"Unsupported content part at '{where}[{index}]': Standby "
                "serves input_text parts and input_image parts by image_url.",
                param=f"{where}[{index}]",
            )
    return tuple(parts)


def messages_from_items(items: Iterable[Any], where: str = "input") -> list[Message]:
    """Input (or output) items → canonical messages.

    A ``function_call`` joins the assistant turn before it, so an answer's text and its
    calls stay one assistant message, as chat completions want them.
    """
    out: list[Message] = []
    for index, item in enumerate(items):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"Invalid type for '{at}': expected an object.", param=at)
        kind = item.get("type", "message")  # the short message form has no type
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise InvalidRequest(
                    f"Invalid value for '{at}.role': expected one of {', '.join(_ROLES)}.",
                    param=f"{at}.role",
                )
            out.append(Message(cast(Role, role), _parts(item.get("content"), f"{at}.content")))
        elif kind == "function_call":
            call = ToolCall(
                str(item.get("call_id") or ""),
                str(item.get("name") or ""),
                str(item.get("arguments") or ""),
            )
            if out and out[-1].role == "assistant":
                last = out[-1]
                out[-1] = Message("assistant", last.parts, (*last.tool_calls, call))
            else:
                out.append(Message("assistant", tool_calls=(call,)))
        elif kind == "function_call_output":
            out.append(
                Message(
                    "tool",
                    _parts(item.get("output"), f"{at}.output"),
                    tool_call_id=str(item.get("call_id") or ""),
                )
            )
        elif kind != "reasoning":  # a reasoning model's notes are not forwarded
            raise InvalidRequest(
                f"Unsupported item type '{kind}' at '{at}': Standby serves "
                "message, function_call and function_call_output items.",
                param=f"{at}.type",
            )
    return out


def _tools(raw: Any) -> tuple[Tool, ...]:
    tools: list[Tool] = []
    for index, tool in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise InvalidRequest(
                f"Unsupported tool at 'tools[{index}]': Standby serves function tools only.",
                param=f"tools[{index}].type",
            )
        tools.append(
            Tool(
                str(tool.get("name") or ""),
                str(tool.get("description") or ""),
                tool.get("parameters") or {},
            )
        )
    return tuple(tools)


def _tool_choice(choice: Any) -> str | None:
    if isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return str(choice.get("name") or "") or None
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        return str(choice.get("mode") or "auto")
    return None


def _format(text: Any) -> ResponseFormat | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema":
        return ResponseFormat(
            "json_schema", name=fmt.get("name"), schema=fmt.get("schema"), strict=fmt.get("strict")
        )
    return ResponseFormat("json_object") if fmt.get("type") == "json_object" else None


def request_from_responses(body: dict[str, Any], history: Sequence[Message] = ()) -> ChatRequest:
    """A Responses request → canonical; ``history`` is the earlier turns of its chain."""
    messages: list[Message] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append(Message("system", (TextPart(instructions),)))
    messages.extend(history)
    raw = body.get("input")
    if isinstance(raw, str):
        messages.append(Message("user", (TextPart(raw),)))
    elif isinstance(raw, list):
        messages.extend(messages_from_items(raw))
    tools = _tools(body.get("tools"))
    extra: dict[str, Any] = {}
    if tools and isinstance(body.get("parallel_tool_calls"), bool):
        extra["parallel_tool_calls"] = body["parallel_tool_calls"]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        extra["reasoning_effort"] = reasoning["effort"]
    stream = body.get("stream") is True
    return ChatRequest(
        model=str(body.get("model") or ""),
        messages=tuple(messages),
        tools=tools,
        tool_choice=_tool_choice(body.get("tool_choice")) if tools else None,
        response_format=_format(body.get("text")),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        max_tokens=body.get("max_output_tokens"),
        stream=stream,
        include_usage=stream,
        user=body.get("user") or body.get("safety_identifier"),
        extra=extra,
    )


def turn_messages(request: dict[str, Any], response: dict[str, Any]) -> list[Message]:
    """One stored turn (its request's ``input`` and its answer's ``output``) as history.

    The turn's ``instructions`` are left out: OpenAI does not carry them over either.
    """
    raw = request.get("input")
    turn = (
        [Message("user", (TextPart(raw),))]
        if isinstance(raw, str)
        else messages_from_items(raw if isinstance(raw, list) else [])
    )
    return turn + messages_from_items(response.get("output") or [], "output")


# -- canonical → Responses -----------------------------------------------------------------


def usage_to_responses(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens or 0,
            "cache_write_tokens": 0,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        "total_tokens": usage.total_tokens,
    }


def usage_from_responses(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    cached = (raw.get("input_tokens_details") or {}).get("cached_tokens")
    reasoning = (raw.get("output_tokens_details") or {}).get("reasoning_tokens")
    return Usage(
        int(raw.get("input_tokens") or 0), int(raw.get("output_tokens") or 0), cached, reasoning
    )


def message_item(id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def call_item(id: str, call: ToolCall, status: str) -> dict[str, Any]:
    return {
        "id": id,
        "type": "function_call",
        "status": status,
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
    }


def output_items(
    message: Message, response_id: str, status: str = "completed"
) -> list[dict[str, Any]]:
    """An answer's text (if any, or nothing else) and then its calls, as output items."""
    items: list[dict[str, Any]] = []
    if message.text or not message.tool_calls:
        items.append(message_item(item_id(response_id, "msg", 0), message.text, status))
    for call in message.tool_calls:
        items.append(call_item(item_id(response_id, "fc", len(items)), call, status))
    return items


def _echo(body: dict[str, Any]) -> dict[str, Any]:
    """The request's settings, which every Response object repeats."""
    given = body.get("text")
    text: dict[str, Any] = given if isinstance(given, dict) else {}
    tools = [
        {
            "type": "function",
            "name": t.get("name"),
            "description": t.get("description"),
            "parameters": t.get("parameters"),
            "strict": t.get("strict"),
        }
        for t in body.get("tools") or []
        if isinstance(t, dict)
    ]
    metadata = body.get("metadata")
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": metadata if isinstance(metadata, dict) else {},
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": tools,
        "text": {**text, "format": text.get("format") or {"type": "text"}},
        "truncation": "disabled",
        "store": body.get("store") is not False,
        "user": body.get("user"),
        "background": False,
    }


def response_object(
    id: str,
    *,
    created_at: int,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None,
    request: dict[str, Any],
    error: dict[str, Any] | None = None,
    incomplete: str | None = None,
) -> dict[str, Any]:
    """A ``Response`` object: the answer's own fields, then the request's echoed ones."""
    return {
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "model": model,
        "output": output,
        "usage": usage_to_responses(usage) if usage is not None else None,
        **_echo(request),
    }


def response_to_responses(
    response: ChatResponse, *, id: str, model: str, request: dict[str, Any], created_at: int
) -> dict[str, Any]:
    incomplete = INCOMPLETE.get(response.finish_reason or "")
    status = "incomplete" if incomplete else "completed"
    return response_object(
        id,
        created_at=created_at,
        model=model,
        status=status,
        output=output_items(response.message, id, status),
        usage=response.usage,
        request=request,
        incomplete=incomplete,
    )


def response_from_responses(data: dict[str, Any]) -> ChatResponse:
    """A ``Response`` object → canonical (its output items as one assistant message)."""
    messages = messages_from_items(data.get("output") or [], "output")
    parts = tuple(p for m in messages for p in m.parts)
    calls = tuple(c for m in messages for c in m.tool_calls)
    reason = (data.get("incomplete_details") or {}).get("reason")
    finish: FinishReason = _FINISH.get(reason or "", "tool_calls" if calls else "stop")
    return ChatResponse(
        id=str(data.get("id") or ""),
        model=str(data.get("model") or ""),
        message=Message("assistant", parts, calls),
        finish_reason=finish,
        usage=usage_from_responses(data.get("usage")),
        created=int(data.get("created_at") or 0),
    )
