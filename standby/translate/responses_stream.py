"""Canonical deltas → the Responses API's semantic stream events.

``EventEncoder`` turns the deltas of one answer (from any vendor, after failover and
continuation) into the event sequence the ``openai`` SDK's ``responses.create(stream=True)``
and ``responses.stream()`` parse: ``response.created``, ``response.in_progress``, then per
output item ``response.output_item.added`` → (``response.content_part.added`` →
``response.output_text.delta``… → ``response.output_text.done`` →
``response.content_part.done`` | ``response.function_call_arguments.delta``… →
``response.function_call_arguments.done``) → ``response.output_item.done``, and last
``response.completed`` (or ``response.incomplete`` for a length / content-filter stop, or
``response.failed`` when the answer broke and nothing could continue it).

Every event carries a ``sequence_number`` counting from 0.  Item ids come from
``responses.item_id`` so they equal those of the journaled ``Response``.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from standby.canonical.chat import Delta, FinishReason, ToolCall, Usage
from standby.translate.responses import (
    INCOMPLETE,
    call_item,
    item_id,
    message_item,
    response_object,
)


class EventEncoder:
    """Canonical deltas → Responses SSE bytes, for one client stream."""

    def __init__(self, *, id: str, model: str, request: dict[str, Any], created_at: int) -> None:
        self.id = id
        self.model = model  # the final events name the model that finished the answer
        self.request = request
        self.created_at = created_at
        self._sequence = 0
        self._items: list[dict[str, Any]] = []  # output items as the final response has them
        self._open: int | None = None  # the output index receiving deltas
        self._tool: int | None = None  # the canonical tool index of the open function call
        self._started = False
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _response(
        self, status: str, *, error: dict[str, Any] | None = None, incomplete: str | None = None
    ) -> dict[str, Any]:
        return response_object(
            self.id,
            created_at=self.created_at,
            model=self.model,
            status=status,
            output=copy.deepcopy(self._items),
            usage=self._usage,
            request=self.request,
            error=error,
            incomplete=incomplete,
        )

    def start(self) -> bytes:
        self._started = True
        response = self._response("in_progress")
        return self._event("response.created", response=response) + self._event(
            "response.in_progress", response=response
        )

    def _begin(self, item: dict[str, Any]) -> list[bytes]:
        out = self._close()
        self._open = len(self._items)
        self._items.append(item)
        out.append(self._event("response.output_item.added", output_index=self._open, item=item))
        return out

    def _close(self, status: str = "completed") -> list[bytes]:
        if self._open is None:
            return []
        index, item = self._open, self._items[self._open]
        self._open = self._tool = None
        item["status"] = status
        where = {"item_id": item["id"], "output_index": index}
        out: list[bytes] = []
        if item["type"] == "message":
            part = item["content"][0]
            out.append(
                self._event(
                    "response.output_text.done",
                    **where,
                    content_index=0,
                    text=part["text"],
                    logprobs=[],
                )
            )
            out.append(
                self._event("response.content_part.done", **where, content_index=0, part=part)
            )
        else:
            out.append(
                self._event(
                    "response.function_call_arguments.done", **where, arguments=item["arguments"]
                )
            )
        out.append(self._event("response.output_item.done", output_index=index, item=item))
        return out

    def feed(self, delta: Delta) -> bytes:
        out: list[bytes] = [] if self._started else [self.start()]
        if delta.text:
            out.extend(self._text(delta.text))
        if delta.tool_index is not None:
            out.extend(self._call(delta, delta.tool_index))
        if delta.finish_reason:
            self._finish = delta.finish_reason
        if delta.usage is not None:
            self._usage = delta.usage
        return b"".join(out)

    def _text(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        index = self._open
        if index is None or self._items[index]["type"] != "message":
            index = len(self._items)
            item = message_item(item_id(self.id, "msg", index), "", "in_progress")
            part = item["content"].pop()  # announced empty; the part is added next
            out.extend(self._begin(item))
            item["content"].append(part)
            out.append(
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=part,
                )
            )
        item = self._items[index]
        item["content"][0]["text"] += text
        out.append(
            self._event(
                "response.output_text.delta",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return out

    def _call(self, delta: Delta, tool: int) -> list[bytes]:
        out: list[bytes] = []
        index = self._open
        if index is None or self._tool != tool:
            index = len(self._items)
            call = ToolCall(delta.tool_id or f"call_{index}", delta.tool_name or "", "")
            out.extend(self._begin(call_item(item_id(self.id, "fc", index), call, "in_progress")))
            self._tool = tool
        item = self._items[index]
        if delta.arguments:
            item["arguments"] += delta.arguments
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=index,
                    delta=delta.arguments,
                )
            )
        return out

    def finish(self) -> bytes:
        """The answer is complete: close the open item, then ``response.completed``."""
        out: list[bytes] = [] if self._started else [self.start()]
        incomplete = INCOMPLETE.get(self._finish or "")
        out.extend(self._close("incomplete" if incomplete else "completed"))
        if incomplete:
            out.append(
                self._event(
                    "response.incomplete",
                    response=self._response("incomplete", incomplete=incomplete),
                )
            )
        else:
            out.append(self._event("response.completed", response=self._response("completed")))
        return b"".join(out)

    def fail(self, message: str) -> bytes:
        """The answer broke and nothing could continue it: ``response.failed``.

        What was already streamed stays in the output, marked ``incomplete``; the open
        item gets no ``done`` events, since it never finished.
        """
        out: list[bytes] = [] if self._started else [self.start()]
        if self._open is not None:
            self._items[self._open]["status"] = "incomplete"
            self._open = self._tool = None
        error = {"code": "server_error", "message": message}
        out.append(self._event("response.failed", response=self._response("failed", error=error)))
        return b"".join(out)
