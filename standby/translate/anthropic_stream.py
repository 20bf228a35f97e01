"""Anthropic streaming events ↔ canonical deltas.

``EventDecoder`` reads Claude's SSE events (``message_start``, ``content_block_start``,
``content_block_delta`` with ``text_delta`` / ``input_json_delta``, ``content_block_stop``,
``message_delta`` with the stop reason and output tokens, ``message_stop``, ``ping``,
``error``) into canonical ``Delta`` records; tool-use blocks become tool calls numbered
in order of appearance.

``EventEncoder`` does the reverse for the ``/v1/messages`` wire: canonical deltas from
any vendor become the event sequence the ``anthropic`` SDK expects.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from standby.canonical.chat import Delta, FinishReason, Usage
from standby.translate.anthropic import finish_from_stop, stop_reason, usage_to_anthropic


class StreamError(Exception):
    """An ``error`` event inside the stream (e.g. ``overloaded_error``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class EventDecoder:
    """Claude's stream events → canonical deltas. Stateful: one per upstream stream."""

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self._usage: dict[str, Any] = {}  # the latest counts seen (message_delta updates)
        self._tools: dict[int, int] = {}  # content block index → tool-call index

    def feed(self, event: dict[str, Any]) -> list[Delta]:
        """One parsed event → the deltas it carries; an ``error`` event raises."""
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = str(message.get("id") or "")
            self.model = str(message.get("model") or "")
            self._count(message.get("usage"))
            return [Delta(role=True)]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self._tools.setdefault(int(event.get("index") or 0), len(self._tools))
                return [
                    Delta(
                        tool_index=index,
                        tool_id=str(block.get("id") or ""),
                        tool_name=str(block.get("name") or ""),
                    )
                ]
            text = block.get("text")
            return [Delta(text=text)] if isinstance(text, str) and text else []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [Delta(text=str(delta.get("text") or ""))]
            if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                index = self._tools.get(int(event.get("index") or 0), 0)
                return [Delta(tool_index=index, arguments=str(delta.get("partial_json") or ""))]
            return []  # thinking, signatures, citations: not part of the answer text
        if kind == "message_delta":
            self._count(event.get("usage"))
            finish = finish_from_stop((event.get("delta") or {}).get("stop_reason"))
            usage = Delta(usage=self._canonical_usage())
            return [Delta(finish_reason=finish), usage] if finish else [usage]
        if kind == "error":
            error = event.get("error") or {}
            raise StreamError(str(error.get("type") or "error"), str(error.get("message") or ""))
        return []  # ping, content_block_stop, message_stop

    def _count(self, usage: Any) -> None:
        # message_delta counts are cumulative; recent API versions repeat the input ones
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if isinstance(v, int)})

    def _canonical_usage(self) -> Usage:
        get = self._usage.get
        cached = get("cache_read_input_tokens")
        prompt = get("input_tokens", 0) + (cached or 0) + get("cache_creation_input_tokens", 0)
        return Usage(prompt, get("output_tokens", 0), cached, None)


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class EventEncoder:
    """Canonical deltas → Anthropic SSE bytes, for one client stream.

    ``feed`` each delta, then ``finish`` (``message_delta`` + ``message_stop``).  The
    usage delta comes last in a stream, so the final counts go in ``message_delta``,
    input tokens included, as the API itself sends them.
    """

    def __init__(self, *, id: str, model: str, input_tokens: int = 0) -> None:
        self.id = id
        self.model = model
        self._input_tokens = input_tokens
        self._open: tuple[str, int] | None = None  # ("text" | "tool", tool index)
        self._block = -1
        self._started = False
        self._finish: FinishReason | None = None
        self._tool_calls = False  # a tool_use block was sent
        self._usage: Usage | None = None

    def start(self) -> bytes:
        """The ``message_start`` event (sent by the first ``feed`` if not called)."""
        self._started = True
        return _sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": self._input_tokens, "output_tokens": 0},
                },
            },
        )

    def _close(self) -> Iterator[bytes]:
        if self._open is not None:
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": self._block})
            self._open = None

    def _begin(self, kind: str, tool: int, block: dict[str, Any]) -> Iterator[bytes]:
        yield from self._close()
        self._block += 1
        self._open = (kind, tool)
        self._tool_calls = self._tool_calls or kind == "tool"
        yield _sse(
            "content_block_start",
            {"type": "content_block_start", "index": self._block, "content_block": block},
        )

    def feed(self, delta: Delta) -> bytes:
        """One canonical delta → the events it becomes (possibly none)."""
        out: list[bytes] = [] if self._started else [self.start()]
        if delta.text:
            if self._open is None or self._open[0] != "text":
                out.extend(self._begin("text", -1, {"type": "text", "text": ""}))
            out.append(
                _sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self._block,
                        "delta": {"type": "text_delta", "text": delta.text},
                    },
                )
            )
        if delta.tool_index is not None:
            if self._open != ("tool", delta.tool_index):
                out.extend(
                    self._begin(
                        "tool",
                        delta.tool_index,
                        {
                            "type": "tool_use",
                            "id": delta.tool_id or f"toolu_{delta.tool_index}",
                            "name": delta.tool_name or "",
                            "input": {},
                        },
                    )
                )
            if delta.arguments:
                out.append(
                    _sse(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": self._block,
                            "delta": {"type": "input_json_delta", "partial_json": delta.arguments},
                        },
                    )
                )
        if delta.finish_reason:
            self._finish = delta.finish_reason
        if delta.usage is not None:
            self._usage = delta.usage
        return b"".join(out)

    def finish(self) -> bytes:
        """Close the open block and end the message with its stop reason and usage."""
        out = [] if self._started else [self.start()]
        out.extend(self._close())
        usage = usage_to_anthropic(self._usage) if self._usage else {"output_tokens": 0}
        out.append(
            _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": stop_reason(self._finish, self._tool_calls),
                        "stop_sequence": None,
                    },
                    "usage": usage,
                },
            )
        )
        out.append(_sse("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    @staticmethod
    def error(kind: str, message: str) -> bytes:
        """An ``error`` event (e.g. ``overloaded_error``): the stream ends without a stop."""
        return _sse("error", {"type": "error", "error": {"type": kind, "message": message}})
