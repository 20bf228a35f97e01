"""What a client has received of one streamed answer, kept for continuation and the journal.

The stream engine tells ``Delivered`` each piece of text, tool call, finish reason and
usage it sends; a continuation asks it for the text so far, and at the end it becomes the
whole answer as one ``chat.completion`` object for the journal.

Text is counted twice: ``text_parts`` grows by one part per send as the engine renders
it (and journals it, before the client has it), ``received`` counts the parts the web
layer has taken back from the engine after handing them to the client's connection.
They differ only while a send is in flight, which is what a client that leaves at that
moment did not receive.
"""

from __future__ import annotations

from typing import Any

from standby.canonical import Chunk


class Delivered:
    __slots__ = ("created", "finish_reason", "id", "received", "text_parts", "tool_calls", "usage")

    def __init__(self) -> None:
        self.id = ""
        self.created = 0
        self.text_parts: list[str] = []  # one piece per send: joined only when needed
        self.received = 0  # how many of text_parts were handed to the client's connection
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    @property
    def received_text(self) -> str:
        """The text handed to the client's connection (no send in flight)."""
        return "".join(self.text_parts[: self.received])

    def add_tool_calls(self, chunk: Chunk) -> None:
        """Merge one chunk's tool-call deltas (by index) into the calls sent so far."""
        for call in chunk.tool_calls:
            entry = self.tool_calls.setdefault(
                call.index,
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name or "", "arguments": ""},
                },
            )
            if call.id:
                entry["id"] = call.id
            if call.name:
                entry["function"]["name"] = call.name
            entry["function"]["arguments"] += call.arguments

    def completion(self, model: str) -> dict[str, Any]:
        """The whole answer as the ``chat.completion`` a non-streaming call would return."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
            "usage": self.usage,
        }
