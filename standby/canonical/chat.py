"""The canonical conversation: what every vendor translator maps to and from.

One chat request, answer or stream delta, independent of any vendor's JSON.  The
translators in ``standby.translate`` convert OpenAI, Anthropic and Gemini shapes to and
from these records; property tests check that canonical → vendor → canonical keeps the
content, tool calls and usage.

Frozen, slotted dataclasses; no behaviour beyond small conveniences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image by URL, or inline as base64 ``data`` with its ``media_type``."""

    url: str | None = None
    data: str | None = None  # base64, without a data: prefix
    media_type: str | None = None  # e.g. image/png (inline images)
    detail: str | None = None  # OpenAI's low | high | auto


Part = TextPart | ImagePart


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, exactly as the model produced it


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    parts: tuple[Part, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()  # assistant messages
    tool_call_id: str | None = None  # tool results: which call they answer
    name: str | None = None  # tool results: the function's name, when known

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)  # JSON schema


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """``text``, ``json_object`` (JSON mode) or ``json_schema`` with its schema."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    tools: tuple[Tool, ...] = ()
    tool_choice: str | None = None  # auto | none | required | <function name>
    response_format: ResponseFormat | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False
    n: int = 1
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # vendor-neutral leftovers

    @property
    def system_text(self) -> str:
        """System and developer instructions joined, for vendors that take them apart."""
        return "\n\n".join(m.text for m in self.messages if m.role in ("system", "developer"))


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ChatResponse:
    id: str
    model: str
    message: Message
    finish_reason: FinishReason | None
    usage: Usage | None = None
    created: int = 0


@dataclass(frozen=True, slots=True)
class Delta:
    """One step of a streamed answer (choice 0)."""

    text: str = ""
    tool_index: int | None = None  # a tool-call fragment: which call
    tool_id: str | None = None
    tool_name: str | None = None
    arguments: str = ""  # a fragment of the call's JSON arguments
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    role: bool = False  # the stream's opening (the assistant role)
