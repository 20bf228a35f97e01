"""Anthropic Messages API JSON ↔ the canonical conversation (requests and answers).

Both directions are needed: the ``anthropic`` provider adapter sends canonical requests
to Claude, and the ``/v1/messages`` wire accepts Anthropic requests from callers whose
answers may come from any vendor.  Stream events live in ``anthropic_stream``.

Shapes follow Anthropic's public API reference for ``POST /v1/messages``: a top-level
``system``, ``messages`` alternating user/assistant with content blocks (``text``,
``image``, ``tool_use``, ``tool_result``), ``max_tokens`` required, ``stop_reason`` and
``usage`` with ``input_tokens`` / ``output_tokens`` (+ cache read/creation).
"""

from __future__ import annotations

from typing import Any

import orjson

from standby.canonical.chat import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    ImagePart,
    Message,
    Part,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)

STOP_TO_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}
FINISH_TO_STOP: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",
}
JSON_INSTRUCTION = "Answer with one valid JSON value and nothing else."


# -- canonical → Anthropic ---------------------------------------------------------------


def _block(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if part.data is not None:
        return {
            "type": "image",
            "source": {
                "type": "base64",
                "media_type": part.media_type or "image/png",
                "data": part.data,
            },
        }
    return {"type": "image", "source": {"type": "url", "url": part.url or ""}}


def _arguments(text: str) -> dict[str, Any]:
    """Tool-call JSON text → Claude's ``input`` object."""
    try:
        value = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        value = None
    # Claude takes objects only; anything else still goes through, visibly
    return value if isinstance(value, dict) else {"_raw": text}


def finish_from_stop(stop: Any) -> FinishReason | None:
    """A ``stop_reason`` → a finish reason (an unknown one is a plain stop)."""
    return STOP_TO_FINISH.get(stop, "stop") if isinstance(stop, str) and stop else None


def stop_reason(finish: FinishReason | None, tool_calls: bool) -> str:
    """A finish reason → Claude's ``stop_reason``.  Some OpenAI-compatible servers finish
    a tool call with ``stop``; Claude's clients run tools only on ``tool_use``."""
    if tool_calls and finish in (None, "stop"):
        return "tool_use"
    return FINISH_TO_STOP.get(finish or "stop", "end_turn")


def _blocks(parts: tuple[Part, ...]) -> list[dict[str, Any]]:
    # the API refuses empty text blocks
    return [_block(p) for p in parts if not (isinstance(p, TextPart) and not p.text)]


def _turn(message: Message) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "tool":
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id or ""}
        if content := _blocks(message.parts):
            block["content"] = content
        return "user", [block]
    blocks = _blocks(message.parts)
    for call in message.tool_calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": _arguments(call.arguments),
            }
        )
    return ("assistant" if message.role == "assistant" else "user"), blocks


def _strip_prefill(messages: list[dict[str, Any]]) -> None:
    """Claude refuses a final assistant turn ending in whitespace: trim its last text."""
    if not messages or messages[-1]["role"] != "assistant":
        return
    blocks = messages[-1]["content"]
    if blocks and blocks[-1]["type"] == "text":
        blocks[-1]["text"] = blocks[-1]["text"].rstrip()
        if not blocks[-1]["text"]:
            blocks.pop()


def prefill_trimmed(request: ChatRequest) -> bool:
    """Whether ``request_to_anthropic`` trims whitespace off a final assistant prefill
    (the continuation then starts with whitespace the caller already has)."""
    last = request.messages[-1] if request.messages else None
    return (
        last is not None
        and last.role == "assistant"
        and not last.tool_calls
        and last.text != last.text.rstrip()
    )


def _tool_choice(request: ChatRequest) -> dict[str, Any] | None:
    choice: dict[str, Any] | None = None
    if request.tool_choice in ("auto", "none"):
        choice = {"type": request.tool_choice}
    elif request.tool_choice == "required":
        choice = {"type": "any"}
    elif request.tool_choice:
        choice = {"type": "tool", "name": request.tool_choice}
    if request.extra.get("parallel_tool_calls") is False:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    return choice


def request_to_anthropic(request: ChatRequest, *, default_max_tokens: int = 4096) -> dict[str, Any]:
    """The canonical request → a ``POST /v1/messages`` body."""
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role in ("system", "developer"):
            continue
        role, blocks = _turn(message)
        if messages and messages[-1]["role"] == role:  # the API wants alternating turns
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    _strip_prefill(messages)
    body: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "max_tokens": request.max_tokens or default_max_tokens,
    }
    system = request.system_text
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":  # Claude has no JSON mode: ask in words
        wanted = JSON_INSTRUCTION
        if fmt.type == "json_schema" and fmt.schema:
            wanted += f" It must match this JSON schema: {orjson.dumps(fmt.schema).decode()}"
        system = f"{system}\n\n{wanted}".strip()
    if system:
        body["system"] = system
    if request.tools:
        body["tools"] = [
            {"name": t.name, "input_schema": t.parameters or {"type": "object"}}
            | ({"description": t.description} if t.description else {})
            for t in request.tools
        ]
        if (choice := _tool_choice(request)) is not None:
            body["tool_choice"] = choice
    for key in ("temperature", "top_p"):
        value = getattr(request, key)
        if value is not None:
            body[key] = min(value, 1.0) if key == "temperature" else value  # Claude: 0..1
    if stop := [s for s in request.stop if s.strip()]:  # Claude refuses blank ones
        body["stop_sequences"] = stop
    if request.user:
        body["metadata"] = {"user_id": request.user}
    if request.stream:
        body["stream"] = True
    return body


def usage_from_anthropic(raw: Any) -> Usage | None:
    """Claude's usage → canonical: the prompt counts cache reads and writes too
    (Claude's ``input_tokens`` leaves them out)."""
    if not isinstance(raw, dict):
        return None
    read = raw.get("cache_read_input_tokens")
    created = raw.get("cache_creation_input_tokens") or 0
    prompt = int(raw.get("input_tokens") or 0) + int(read or 0) + int(created)
    return Usage(prompt, int(raw.get("output_tokens") or 0), read, None)


def response_from_anthropic(data: dict[str, Any]) -> ChatResponse:
    """A ``message`` object → the canonical response (thinking blocks are dropped)."""
    parts: list[Part] = []
    calls: list[ToolCall] = []
    for block in data.get("content") or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            parts.append(TextPart(str(block.get("text") or "")))
        elif block.get("type") == "tool_use":
            calls.append(
                ToolCall(
                    str(block.get("id") or ""),
                    str(block.get("name") or ""),
                    orjson.dumps(block.get("input") or {}).decode(),
                )
            )
    return ChatResponse(
        id=str(data.get("id") or ""),
        model=str(data.get("model") or ""),
        message=Message("assistant", tuple(parts), tuple(calls)),
        finish_reason=finish_from_stop(data.get("stop_reason")),
        usage=usage_from_anthropic(data.get("usage")),
    )


# -- Anthropic → canonical (the /v1/messages wire) -----------------------------------------


def _parts_from_blocks(content: Any) -> tuple[list[Part], list[ToolCall], list[Message]]:
    """Blocks of one turn → its parts, its tool calls and the tool results it carries."""
    if isinstance(content, str):
        return ([TextPart(content)] if content else []), [], []
    parts: list[Part] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(TextPart(str(block.get("text") or "")))
        elif kind == "image":
            source = block.get("source") or {}
            if source.get("type") == "base64":
                parts.append(
                    ImagePart(data=source.get("data"), media_type=source.get("media_type"))
                )
            else:
                parts.append(ImagePart(url=source.get("url")))
        elif kind == "tool_use":
            calls.append(
                ToolCall(
                    str(block.get("id") or ""),
                    str(block.get("name") or ""),
                    orjson.dumps(block.get("input") or {}).decode(),
                )
            )
        elif kind == "tool_result":
            inner, _, _ = _parts_from_blocks(block.get("content") or "")
            results.append(
                Message("tool", tuple(inner), tool_call_id=str(block.get("tool_use_id") or ""))
            )
    return parts, calls, results


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def request_from_anthropic(body: dict[str, Any]) -> ChatRequest:
    """A ``POST /v1/messages`` body → the canonical request (the system prompt becomes a
    leading system message; tool results become tool messages before the user's text)."""
    messages: list[Message] = []
    system = body.get("system")
    if isinstance(system, list):
        system = "\n\n".join(str(b.get("text") or "") for b in system if isinstance(b, dict))
    if system:
        messages.append(Message("system", (TextPart(str(system)),)))
    for turn in body.get("messages") or []:
        if not isinstance(turn, dict):
            continue
        parts, calls, results = _parts_from_blocks(turn.get("content"))
        messages.extend(results)  # tool results come first in a user turn
        if turn.get("role") == "assistant":
            messages.append(Message("assistant", tuple(parts), tuple(calls)))
        elif parts:
            messages.append(Message("user", tuple(parts)))
    tools = tuple(
        Tool(str(t.get("name") or ""), str(t.get("description") or ""), t.get("input_schema") or {})
        for t in body.get("tools") or []
        if isinstance(t, dict)
    )
    choice = body.get("tool_choice") or {}
    kind = choice.get("type") if isinstance(choice, dict) else None
    tool_choice = {"auto": "auto", "none": "none", "any": "required"}.get(kind or "")
    if kind == "tool":
        tool_choice = str(choice.get("name") or "") or None
    single = isinstance(choice, dict) and choice.get("disable_parallel_tool_use") is True
    metadata = body.get("metadata")
    return ChatRequest(
        model=str(body.get("model") or ""),
        messages=tuple(messages),
        tools=tools,
        tool_choice=tool_choice,
        temperature=_number(body.get("temperature")),
        top_p=_number(body.get("top_p")),
        max_tokens=body.get("max_tokens"),
        stop=tuple(s for s in body.get("stop_sequences") or () if isinstance(s, str)),
        stream=bool(body.get("stream")),
        include_usage=bool(body.get("stream")),
        user=metadata.get("user_id") if isinstance(metadata, dict) else None,
        extra={"parallel_tool_calls": False} if single and tools else {},
    )


def usage_to_anthropic(usage: Usage) -> dict[str, Any]:
    """Canonical usage → Claude's: ``input_tokens`` without the cache reads."""
    out: dict[str, Any] = {
        "input_tokens": max(0, usage.prompt_tokens - (usage.cached_tokens or 0)),
        "output_tokens": usage.completion_tokens,
    }
    if usage.cached_tokens is not None:
        out["cache_read_input_tokens"] = usage.cached_tokens
    return out


def response_to_anthropic(response: ChatResponse, *, id: str, model: str) -> dict[str, Any]:
    """The canonical response → a ``message`` object for the ``/v1/messages`` wire."""
    content: list[dict[str, Any]] = []
    if response.message.text:
        content.append({"type": "text", "text": response.message.text})
    for call in response.message.tool_calls:
        content.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": _arguments(call.arguments),
            }
        )
    out_usage = usage_to_anthropic(response.usage or Usage())
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(response.finish_reason, bool(response.message.tool_calls)),
        "stop_sequence": None,
        "usage": out_usage,
    }
