"""Transport records: a call to one target, its reply, its stream chunks, its deadlines.

The body inside is the caller's OpenAI-shaped dict, forwarded almost untouched (only
``model`` is re-aimed), with the raw bytes kept to pass through without re-serialising.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Endpoint = Literal["chat", "embeddings"]


@dataclass(frozen=True, slots=True)
class Call:
    """What one attempt sends to one target."""

    endpoint: Endpoint
    body: dict[str, Any]  # already aimed at the target's model
    stream: bool = False
    continuation: bool = False  # a mid-stream continuation request (prefill or instruction)


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete, non-streaming answer from a provider."""

    raw: bytes  # the body exactly as received
    data: dict[str, Any]  # the parsed body
    status: int = 200

    @property
    def model(self) -> str:
        return str(self.data.get("model") or "")

    @property
    def usage(self) -> dict[str, Any] | None:
        usage = self.data.get("usage")
        return usage if isinstance(usage, dict) else None


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(slots=True)
class Chunk:
    """One parsed ``chat.completion.chunk`` event of a stream."""

    raw: bytes  # the event's data payload exactly as received
    data: dict[str, Any]
    content: str = ""  # text delta of choice 0
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    role_only: bool = False  # carries no content, tool call, finish or usage
    choice: int | None = None  # the index of the choice this event is about; None: none

    @classmethod
    def parse(cls, raw: bytes, data: dict[str, Any]) -> Chunk:
        chunk = cls(raw=raw, data=data)
        usage = data.get("usage")
        if isinstance(usage, dict):
            chunk.usage = usage
        choices = data.get("choices")
        if isinstance(choices, list) and choices:
            choice = choices[0]
            if isinstance(choice, dict):
                index = choice.get("index", 0)
                chunk.choice = index if isinstance(index, int) else 0
                delta = choice.get("delta") or {}
                if isinstance(delta, dict):
                    text = delta.get("content")
                    if isinstance(text, str):
                        chunk.content = text
                    calls = delta.get("tool_calls")
                    if isinstance(calls, list):
                        chunk.tool_calls = [_tool_delta(c) for c in calls if isinstance(c, dict)]
                reason = choice.get("finish_reason")
                if isinstance(reason, str):
                    chunk.finish_reason = reason
        chunk.role_only = not (
            chunk.content or chunk.tool_calls or chunk.finish_reason or chunk.usage
        )
        return chunk


def _tool_delta(call: dict[str, Any]) -> ToolCallDelta:
    fn = call.get("function") or {}
    return ToolCallDelta(
        index=int(call.get("index", 0) or 0),
        id=call.get("id"),
        name=fn.get("name") if isinstance(fn, dict) else None,
        arguments=(fn.get("arguments") or "") if isinstance(fn, dict) else "",
    )


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Per-attempt deadlines in seconds (already clipped to the remaining budget)."""

    connect: float
    first_token: float
    idle: float
