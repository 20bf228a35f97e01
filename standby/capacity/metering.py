"""Tokens counted where answers end: a journal sink that tells the limits what each
answer used, then passes every call on unchanged.

Token limits (a client's per minute and per day, a target's per minute) can only count an
answer once it is complete; the journal's ``completed`` is the one place every answer —
whole or streamed, on any wire — ends.  The pipeline puts this sink in front of the
journal only for requests that some token limit concerns, so the others pay nothing.
A stream counts its tokens only when the provider reported its usage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from standby.routing.sink import Attempt, JournalSink

Used = Callable[[str, str, int], None]  # (provider, model, tokens in all)


def total_tokens(usage: dict[str, Any] | None) -> int:
    """The tokens of an answer's usage, in OpenAI's shape or Anthropic's."""
    if not isinstance(usage, dict):
        return 0
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    parts = (
        usage.get(name)
        for name in ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens")
    )
    return sum(part for part in parts if isinstance(part, int))


class Metered:
    """``sink``, with ``used`` told the tokens of every completed answer."""

    __slots__ = ("sink", "used")

    def __init__(self, sink: JournalSink, used: Used) -> None:
        self.sink = sink
        self.used = used

    def accepted(
        self,
        rid: str,
        *,
        endpoint: str,
        route: str,
        model: str,
        stream: bool,
        raw_body: bytes,
        metadata: dict[str, Any] | None,
        store: bool,
        client: str | None = None,
    ) -> None:
        self.sink.accepted(
            rid,
            endpoint=endpoint,
            route=route,
            model=model,
            stream=stream,
            raw_body=raw_body,
            metadata=metadata,
            store=store,
            client=client,
        )

    def delta(self, rid: str, text: str) -> None:
        self.sink.delta(rid, text)

    def completed(
        self,
        rid: str,
        *,
        completion_id: str,
        provider: str,
        model: str,
        response: bytes | dict[str, Any],
        usage: dict[str, Any] | None,
        attempts: Sequence[Attempt],
    ) -> None:
        tokens = total_tokens(usage)
        if tokens:
            self.used(provider, model, tokens)
        self.sink.completed(
            rid,
            completion_id=completion_id,
            provider=provider,
            model=model,
            response=response,
            usage=usage,
            attempts=attempts,
        )

    def failed(
        self, rid: str, *, status: int, response: bytes, attempts: Sequence[Attempt]
    ) -> None:
        self.sink.failed(rid, status=status, response=response, attempts=attempts)

    def client_gone(
        self,
        rid: str,
        *,
        completion_id: str,
        provider: str,
        model: str,
        sent: str,
        attempts: Sequence[Attempt],
    ) -> None:
        self.sink.client_gone(
            rid,
            completion_id=completion_id,
            provider=provider,
            model=model,
            sent=sent,
            attempts=attempts,
        )

    def deferred(self, rid: str, *, until: float, callback: str | None) -> None:
        self.sink.deferred(rid, until=until, callback=callback)
