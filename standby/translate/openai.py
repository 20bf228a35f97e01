"""OpenAI chat-completions JSON ↔ the canonical conversation.

OpenAI's shape is Standby's lingua franca inside the attempt loop, so every other vendor
goes through here: an Anthropic or Gemini adapter reads the OpenAI-shaped ``Call.body``
with ``request_from_openai`` and answers with ``response_to_openai`` /
``delta_to_openai`` so the router sees one shape.  Stream chunks and usage live in
``openai_stream`` and are re-exported here.
"""

from __future__ import annotations

from typing import Any, cast

from standby.canonical.chat import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    Role,
    TextPart,
    Tool,
    ToolCall,
)
from standby.translate.openai_stream import (
    FINISH,
    delta_from_openai,
    delta_to_openai,
    usage_from_openai,
    usage_to_openai,
)

__all__ = [
    "delta_from_openai",
    "delta_to_openai",
    "message_to_openai",
    "request_from_openai",
    "request_to_openai",
    "response_from_openai",
    "response_to_openai",
    "usage_from_openai",
    "usage_to_openai",
]

_KNOWN = {
    "model",
    "messages",
    "tools",
    "tool_choice",
    "response_format",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "stream",
    "stream_options",
    "n",
    "user",
    "functions",
    "function_call",
}


def _parts(content: Any) -> tuple[Part, ...]:
    if content is None:
        return ()
    if isinstance(content, str):
        return (TextPart(content),) if content else ()
    parts: list[Part] = []
    for item in content if isinstance(content, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind in ("text", "input_text", "output_text"):
            parts.append(TextPart(str(item.get("text") or "")))
        elif kind in ("image_url", "input_image"):
            image = item.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            detail = image.get("detail") if isinstance(image, dict) else item.get("detail")
            parts.append(_image(str(url or ""), detail))
    return tuple(parts)


def _image(url: str, detail: Any) -> ImagePart:
    if url.startswith("data:") and ";base64," in url:
        header, data = url[5:].split(";base64,", 1)
        return ImagePart(data=data, media_type=header or None, detail=detail)
    return ImagePart(url=url, detail=detail)


def _call(raw: dict[str, Any]) -> ToolCall:
    fn = raw.get("function")
    fn = fn if isinstance(fn, dict) else {}
    return ToolCall(
        id=str(raw.get("id") or ""),
        name=str(fn.get("name") or ""),
        arguments=str(fn.get("arguments") or ""),
    )


def _legacy_id(name: Any) -> str:
    """The id given to a legacy ``function_call`` and its result (they have none)."""
    return f"call_{name or 'function'}"


def _message(raw: dict[str, Any]) -> Message:
    role = raw.get("role")
    calls = tuple(_call(c) for c in raw.get("tool_calls") or [] if isinstance(c, dict))
    tool_call_id = raw.get("tool_call_id")
    legacy = raw.get("function_call")
    if isinstance(legacy, dict) and not calls:  # the legacy single function call
        calls = (
            ToolCall(
                _legacy_id(legacy.get("name")),
                str(legacy.get("name") or ""),
                str(legacy.get("arguments") or ""),
            ),
        )
    if role == "function":  # the legacy name of a tool result
        role = "tool"
        tool_call_id = tool_call_id or _legacy_id(raw.get("name"))
    return Message(
        role=cast(Role, role),
        parts=_parts(raw.get("content")),
        tool_calls=calls,
        tool_call_id=tool_call_id,
        name=raw.get("name"),
    )


def _tool_choice(choice: Any) -> str | None:
    """``"auto"``, ``{"type": "function", "function": {"name": …}}`` or the legacy
    ``{"name": …}`` of ``function_call`` → a canonical tool choice."""
    if isinstance(choice, str):
        return choice
    if isinstance(choice, dict):
        fn = choice.get("function")
        fn = fn if isinstance(fn, dict) else choice
        return str(fn.get("name") or "") or None
    return None


def _format(raw: Any) -> ResponseFormat | None:
    if not isinstance(raw, dict):
        return None
    kind = raw.get("type")
    if kind == "json_schema":
        spec = raw.get("json_schema") or {}
        return ResponseFormat(
            "json_schema",
            name=spec.get("name"),
            schema=spec.get("schema"),
            strict=spec.get("strict"),
        )
    if kind == "json_object":
        return ResponseFormat("json_object")
    return ResponseFormat("text")


def _number(value: Any) -> float | None:
    # a mistyped sampling value is the target's to refuse, not a crash of ours
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _tools(body: dict[str, Any]) -> tuple[Tool, ...]:
    """``tools`` (or the legacy ``functions``) → canonical tools."""
    functions = [t.get("function") for t in body.get("tools") or [] if isinstance(t, dict)]
    if not functions:
        functions = list(body.get("functions") or [])
    return tuple(
        Tool(
            name=str(fn.get("name") or ""),
            description=str(fn.get("description") or ""),
            parameters=fn.get("parameters") or {},
        )
        for fn in functions
        if isinstance(fn, dict)
    )


def request_from_openai(body: dict[str, Any]) -> ChatRequest:
    """An OpenAI chat-completions request body → the canonical request."""
    stop = body.get("stop")
    options = body.get("stream_options")
    choice = body.get("tool_choice", body.get("function_call"))
    return ChatRequest(
        model=str(body.get("model") or ""),
        messages=tuple(_message(m) for m in body.get("messages") or [] if isinstance(m, dict)),
        tools=_tools(body),
        tool_choice=_tool_choice(choice),
        response_format=_format(body.get("response_format")),
        temperature=_number(body.get("temperature")),
        top_p=_number(body.get("top_p")),
        max_tokens=_count(body.get("max_completion_tokens")) or _count(body.get("max_tokens")),
        stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
        stream=bool(body.get("stream")),
        include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
        n=int(body.get("n") or 1),
        user=body.get("user"),
        extra={k: v for k, v in body.items() if k not in _KNOWN},
    )


def _content_out(parts: tuple[Part, ...]) -> Any:
    if all(isinstance(p, TextPart) for p in parts):
        return "".join(p.text for p in parts if isinstance(p, TextPart))
    out: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, TextPart):
            out.append({"type": "text", "text": part.text})
        else:
            url = part.url or f"data:{part.media_type or 'image/png'};base64,{part.data}"
            image: dict[str, Any] = {"url": url}
            if part.detail:
                image["detail"] = part.detail
            out.append({"type": "image_url", "image_url": image})
    return out


def message_to_openai(message: Message) -> dict[str, Any]:
    """One canonical message → an OpenAI chat message."""
    out: dict[str, Any] = {"role": message.role}
    if message.role == "assistant":
        out["content"] = message.text or None
    elif message.role == "tool":  # OpenAI's tool results are text only
        out["content"] = message.text
    else:
        out["content"] = _content_out(message.parts)
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name:
        out["name"] = message.name
    return out


def _function(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description:
        out["description"] = tool.description
    if tool.parameters:
        out["parameters"] = tool.parameters
    return {"type": "function", "function": out}


def request_to_openai(request: ChatRequest) -> dict[str, Any]:
    """The canonical request → an OpenAI chat-completions body (``max_tokens``, not
    ``max_completion_tokens``: the older name is the one every compatible API reads)."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [message_to_openai(m) for m in request.messages],
    }
    if request.tools:
        body["tools"] = [_function(t) for t in request.tools]
    if request.tool_choice in ("auto", "none", "required"):
        body["tool_choice"] = request.tool_choice
    elif request.tool_choice:
        body["tool_choice"] = {"type": "function", "function": {"name": request.tool_choice}}
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema":
        spec: dict[str, Any] = {"name": fmt.name or "response", "schema": fmt.schema or {}}
        if fmt.strict is not None:
            spec["strict"] = fmt.strict
        body["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif fmt is not None:
        body["response_format"] = {"type": fmt.type}
    for key in ("temperature", "top_p", "max_tokens", "user"):
        value = getattr(request, key)
        if value is not None:
            body[key] = value
    if request.stop:
        body["stop"] = list(request.stop)
    if request.n != 1:
        body["n"] = request.n
    if request.stream:
        body["stream"] = True
        if request.include_usage:
            body["stream_options"] = {"include_usage": True}
    body.update(request.extra)
    return body


def response_from_openai(data: dict[str, Any]) -> ChatResponse:
    """A ``chat.completion`` object (choice 0) → the canonical response."""
    choices = data.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    reason = choice.get("finish_reason")
    return ChatResponse(
        id=str(data.get("id") or ""),
        model=str(data.get("model") or ""),
        message=_message(choice.get("message") or {"role": "assistant"}),
        finish_reason=FINISH.get(reason, "stop") if reason else None,
        usage=usage_from_openai(data.get("usage")),
        created=int(data.get("created") or 0),
    )


def response_to_openai(response: ChatResponse) -> dict[str, Any]:
    """The canonical response → a ``chat.completion`` object."""
    message = message_to_openai(response.message)
    message.setdefault("content", None)
    out: dict[str, Any] = {
        "id": response.id,
        "object": "chat.completion",
        "created": response.created,
        "model": response.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": response.finish_reason,
            }
        ],
    }
    if response.usage is not None:
        out["usage"] = usage_to_openai(response.usage)
    return out
