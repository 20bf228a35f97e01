"""Continuing a broken stream on another target: the request to send and the splice.

Two modes, chosen by what the next target can do:
* prefill — the partial answer goes in as a final assistant message, which the model
  continues (targets that declare ``prefill: true``);
* instruction — the partial answer goes in as an assistant message followed by a user
  message asking to continue exactly where it stopped.

Either way the new text may repeat the tail of what the client already has; ``Splicer``
holds back the start of the continuation until it can tell, and strips the overlap.
"""

from __future__ import annotations

from typing import Any

INSTRUCTION = (
    "Your previous answer was cut off. Continue it exactly where it stopped, starting with "
    "the very next characters. Do not repeat any of it, do not apologise or comment."
)
MIN_OVERLAP = 5  # shorter echoes are too likely to be a genuine repetition
MAX_OVERLAP = 400


def continuation_body(original: dict[str, Any], sent_text: str, *, prefill: bool) -> dict[str, Any]:
    """The body asking a target to continue ``sent_text``; the original is not changed."""
    messages = list(original.get("messages") or [])
    if sent_text:
        # vendors refuse a prefill ending in whitespace (Anthropic); the splicer drops the
        # whitespace the continuation then starts with
        messages.append(
            {"role": "assistant", "content": sent_text.rstrip() if prefill else sent_text}
        )
        if not prefill:
            messages.append({"role": "user", "content": INSTRUCTION})
    body = dict(original)
    body["messages"] = messages
    body.pop("n", None)
    return body


class Splicer:
    """Strips the part of a continuation that repeats the end of the text already sent."""

    __slots__ = ("_held", "_settled", "_space", "_tail")

    def __init__(self, sent_text: str) -> None:
        self._tail = sent_text[-MAX_OVERLAP:]
        self._held = ""
        self._settled = not self._tail
        self._space = sent_text[-1:].isspace()  # the client's text already ends in a space

    def feed(self, text: str) -> str:
        """Text of the continuation in; the part safe to send out (possibly empty)."""
        if self._settled:
            return self._trim(text)
        self._held += text
        if self._could_still_overlap():
            return ""
        return self._trim(self._settle())

    def flush(self) -> str:
        """The stream ended: whatever is still held back, minus any overlap."""
        return "" if self._settled else self._trim(self._settle())

    def _trim(self, text: str) -> str:
        # the client's text ends in whitespace (a trimmed prefill asked the model to go on
        # from before it): drop the whitespace the continuation starts with
        if self._space and text:
            text = text.lstrip()
            self._space = not text
        return text

    def _could_still_overlap(self) -> bool:
        # the held text is itself a piece of the tail that may grow into an overlap
        return len(self._held) < MAX_OVERLAP and self._held in self._tail

    def _settle(self) -> str:
        self._settled = True
        held, self._held = self._held, ""
        longest = min(len(self._tail), len(held))
        for size in range(longest, MIN_OVERLAP - 1, -1):
            if self._tail.endswith(held[:size]):
                return held[size:]
        return held
