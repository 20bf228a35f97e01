"""OpenAI ``chat.completion.chunk`` events and ``usage`` objects ↔ canonical records.

``delta_to_openai`` renders one canonical ``Delta`` as a chunk (what a non-OpenAI adapter
hands the stream engine); ``delta_from_openai`` reads a chunk back into deltas (what the
``/v1/messages`` wire does with the engine's output).  Choice 0 only.
"""

from __future__ import annotations

from typing import Any

from standby.canonical.chat import Delta, FinishReason, Usage

FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _detail(raw: dict[str, Any], group: str, key: str) -> int | None:
    details = raw.get(group)
    value = details.get(key) if isinstance(details, dict) else None
    return int(value) if isinstance(value, int | float) else None


def usage_from_openai(raw: Any) -> Usage | None:
    """An OpenAI ``usage`` object → canonical usage (``None`` when absent)."""
    if not isinstance(raw, dict):
        return None
    return Usage(
        int(raw.get("prompt_tokens") or 0),
        int(raw.get("completion_tokens") or 0),
        _detail(raw, "prompt_tokens_details", "cached_tokens"),
        _detail(raw, "completion_tokens_details", "reasoning_tokens"),
    )


def usage_to_openai(usage: Usage) -> dict[str, Any]:
    """Canonical usage → OpenAI's ``usage`` object (with ``total_tokens``)."""
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def delta_to_openai(delta: Delta, *, id: str, model: str, created: int) -> dict[str, Any]:
    """One ``chat.completion.chunk``; a usage-only delta gets ``choices: []``."""
    chunk: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
    }
    if delta.usage is not None and not (
        delta.text or delta.tool_index is not None or delta.finish_reason or delta.role
    ):
        chunk["choices"] = []
        chunk["usage"] = usage_to_openai(delta.usage)
        return chunk
    body: dict[str, Any] = {}
    if delta.role:
        body["role"] = "assistant"
        body["content"] = delta.text
    elif delta.text:
        body["content"] = delta.text
    if delta.tool_index is not None:
        call: dict[str, Any] = {
            "index": delta.tool_index,
            "function": {"arguments": delta.arguments},
        }
        if delta.tool_id:
            call["id"] = delta.tool_id
            call["type"] = "function"
        if delta.tool_name:
            call["function"]["name"] = delta.tool_name
        body["tool_calls"] = [call]
    chunk["choices"] = [
        {"index": 0, "delta": body, "logprobs": None, "finish_reason": delta.finish_reason}
    ]
    if delta.usage is not None:
        chunk["usage"] = usage_to_openai(delta.usage)
    return chunk


def delta_from_openai(chunk: dict[str, Any]) -> list[Delta]:
    """One ``chat.completion.chunk`` (choice 0) → canonical deltas."""
    out: list[Delta] = []
    choice = next(
        (c for c in chunk.get("choices") or [] if isinstance(c, dict) and c.get("index", 0) == 0),
        {},
    )
    delta = _object(choice.get("delta"))
    if delta.get("role"):
        out.append(Delta(role=True, text=str(delta.get("content") or "")))
    elif delta.get("content"):
        out.append(Delta(text=str(delta["content"])))
    for call in delta.get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        fn = _object(call.get("function"))
        out.append(
            Delta(
                tool_index=int(call.get("index") or 0),
                tool_id=call.get("id"),
                tool_name=fn.get("name"),
                arguments=str(fn.get("arguments") or ""),
            )
        )
    reason = choice.get("finish_reason")
    if reason:
        out.append(Delta(finish_reason=FINISH.get(reason, "stop")))
    usage = usage_from_openai(chunk.get("usage"))
    if usage is not None:
        out.append(Delta(usage=usage))
    return out
