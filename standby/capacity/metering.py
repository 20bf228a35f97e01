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

from standby.routing.sink import Attempt, JournalSink, PassThrough

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


class Metered(PassThrough):
    """``inner``, with ``used`` told the tokens of every completed answer."""

    __slots__ = ("used",)

    def __init__(self, inner: JournalSink, used: Used) -> None:
        super().__init__(inner)
        self.used = used

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
        super().completed(
            rid,
            completion_id=completion_id,
            provider=provider,
            model=model,
            response=response,
            usage=usage,
            attempts=attempts,
        )
