"""Gemini answers ↔ the canonical conversation: one ``GenerateContentResponse``, or a stream.

``streamGenerateContent?alt=sse`` sends one ``GenerateContentResponse`` per SSE event, so
a whole answer and each stream event share one shape, and one module.

Mapping decisions, Gemini → canonical:

* The text parts of a candidate are joined; thought parts (``"thought": true``) are the
  model's reasoning, not its answer, and are left out.  Each ``functionCall`` becomes a
  ``ToolCall`` with id ``call_<n>`` (its position in the answer; Gemini names calls by
  function, so the request side maps ids back to names) and arguments the JSON of
  ``args``.  Gemini never streams arguments: a streamed call arrives whole, in one delta.
* ``finishReason``: ``STOP`` → ``stop`` (``tool_calls`` when the answer has calls),
  ``MAX_TOKENS`` → ``length``, the safety family (``SAFETY``, ``RECITATION``,
  ``BLOCKLIST``, ``PROHIBITED_CONTENT``, ``SPII``, ``IMAGE_SAFETY``) →
  ``content_filter``, and the reasons that leave no usable answer (``OTHER``,
  ``LANGUAGE``, ``MALFORMED_FUNCTION_CALL``, ``UNEXPECTED_TOOL_CALL``) → ``error`` so a
  broken answer is never reported as a clean stop.  Unknown future values → ``stop``.
* ``usageMetadata``: prompt = ``promptTokenCount`` (cached tokens included) +
  ``toolUsePromptTokenCount``; completion = ``candidatesTokenCount`` +
  ``thoughtsTokenCount`` (OpenAI counts reasoning inside completion tokens); cached =
  ``cachedContentTokenCount``; reasoning = ``thoughtsTokenCount``.
* A prompt Gemini refuses to answer comes back as ``promptFeedback.blockReason`` with no
  candidates; ``blocked_reason`` finds it and the adapter turns it into a final
  content-policy error (F14), in a whole reply or as a stream's first event.
"""

from __future__ import annotations

from typing import Any

from standby.canonical.chat import ChatResponse, Delta, FinishReason, Message, TextPart, Usage
from standby.translate.gemini import arguments_object, parts_from_gemini

FINISH_FROM_GEMINI: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "OTHER": "error",
    "LANGUAGE": "error",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
}
FINISH_TO_GEMINI: dict[str, str] = {
    "stop": "STOP",
    "tool_calls": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
    "error": "OTHER",
}


def finish_from_gemini(reason: Any, *, calls: bool) -> FinishReason | None:
    """A candidate's ``finishReason`` (absent while a stream goes on) → canonical."""
    if not isinstance(reason, str) or reason in ("", "FINISH_REASON_UNSPECIFIED"):
        return None
    finish = FINISH_FROM_GEMINI.get(reason, "stop")
    return "tool_calls" if calls and finish == "stop" else finish


def usage_from_gemini(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    thoughts = raw.get("thoughtsTokenCount")
    cached = raw.get("cachedContentTokenCount")
    return Usage(
        int(raw.get("promptTokenCount") or 0) + int(raw.get("toolUsePromptTokenCount") or 0),
        int(raw.get("candidatesTokenCount") or 0) + int(thoughts or 0),
        None if cached is None else int(cached),
        None if thoughts is None else int(thoughts),
    )


def usage_to_gemini(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": usage.completion_tokens - (usage.reasoning_tokens or 0),
        "totalTokenCount": usage.total_tokens,
    }
    if usage.cached_tokens is not None:
        out["cachedContentTokenCount"] = usage.cached_tokens
    if usage.reasoning_tokens is not None:
        out["thoughtsTokenCount"] = usage.reasoning_tokens
    return out


def blocked_reason(data: dict[str, Any]) -> str | None:
    """The ``blockReason`` of a prompt Gemini refused (no candidates), else ``None``."""
    feedback = data.get("promptFeedback")
    if data.get("candidates") or not isinstance(feedback, dict):
        return None
    reason = feedback.get("blockReason")
    return str(reason) if reason else None


def _candidate(data: dict[str, Any], index: int) -> tuple[str, dict[str, Any], list[Any]]:
    """``(text, candidate, calls)`` of the candidate at ``index`` (empty when missing)."""
    candidates = data.get("candidates")
    found = candidates[index] if isinstance(candidates, list) and index < len(candidates) else {}
    candidate = found if isinstance(found, dict) else {}
    content = candidate.get("content")
    parts, calls, _ = parts_from_gemini(content.get("parts") if isinstance(content, dict) else [])
    return "".join(p.text for p in parts if isinstance(p, TextPart)), candidate, calls


def response_from_gemini(
    data: dict[str, Any], *, id: str, model: str, candidate: int = 0
) -> ChatResponse:
    """One candidate of a whole answer; ``responseId``/``modelVersion`` win when sent."""
    text, found, calls = _candidate(data, candidate)
    return ChatResponse(
        id=str(data.get("responseId") or id),
        model=str(data.get("modelVersion") or model),
        message=Message("assistant", (TextPart(text),) if text else (), tuple(calls)),
        finish_reason=finish_from_gemini(found.get("finishReason"), calls=bool(calls)),
        usage=usage_from_gemini(data.get("usageMetadata")),
    )


def response_to_gemini(response: ChatResponse) -> dict[str, Any]:
    """A canonical answer as Gemini would send it (a Gemini wire, the sim, tests)."""
    parts: list[dict[str, Any]] = []
    if response.message.text:
        parts.append({"text": response.message.text})
    parts.extend(
        {"functionCall": {"name": c.name, "args": arguments_object(c.arguments)}}
        for c in response.message.tool_calls
    )
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if response.finish_reason:
        candidate["finishReason"] = FINISH_TO_GEMINI[response.finish_reason]
    out: dict[str, Any] = {
        "candidates": [candidate],
        "modelVersion": response.model,
        "responseId": response.id,
    }
    if response.usage is not None:
        out["usageMetadata"] = usage_to_gemini(response.usage)
    return out


class StreamDecoder:
    """Stream events → ``(candidate index, Delta)`` pairs; stateful, one per stream.

    The first event of each candidate opens it with the role; its ``finishReason`` ends
    it.  Gemini repeats ``usageMetadata`` on many events: the latest is kept and sent
    once, as a usage-only delta, when every open candidate has finished.  ``id`` and
    ``model`` take the first event's ``responseId`` and ``modelVersion`` when present.
    """

    def __init__(self, *, id: str, model: str) -> None:
        self.id = id
        self.model = model
        self._started = False
        self._open: set[int] = set()
        self._finished: set[int] = set()
        self._calls: dict[int, int] = {}  # candidate → tool calls so far
        self._usage: Usage | None = None
        self._usage_sent = False

    def __repr__(self) -> str:
        return (
            f"<StreamDecoder {self.id} open={sorted(self._open)} "
            f"finished={sorted(self._finished)} usage_sent={self._usage_sent}>"
        )

    def feed(self, event: dict[str, Any]) -> list[tuple[int, Delta]]:
        if not self._started:
            self._started = True
            self.id = str(event.get("responseId") or self.id)
            self.model = str(event.get("modelVersion") or self.model)
        self._usage = usage_from_gemini(event.get("usageMetadata")) or self._usage
        out: list[tuple[int, Delta]] = []
        candidates = event.get("candidates")
        for position, raw in enumerate(candidates if isinstance(candidates, list) else []):
            index = int(raw.get("index") or 0) if isinstance(raw, dict) else 0
            text, candidate, calls = _candidate(event, position)
            opening = index not in self._open
            self._open.add(index)
            if opening or text:
                out.append((index, Delta(text=text, role=opening)))
            for call in calls:
                number = self._calls.get(index, 0)
                self._calls[index] = number + 1
                out.append(
                    (
                        index,
                        Delta(
                            tool_index=number,
                            tool_id=f"call_{number}",
                            tool_name=call.name,
                            arguments=call.arguments,
                        ),
                    )
                )
            finish = finish_from_gemini(candidate.get("finishReason"), calls=index in self._calls)
            if finish and index not in self._finished:
                self._finished.add(index)
                out.append((index, Delta(finish_reason=finish)))
        if (
            self._usage is not None
            and not self._usage_sent
            and self._finished
            and self._finished >= self._open
        ):
            self._usage_sent = True
            out.append((0, Delta(usage=self._usage)))
        return out
