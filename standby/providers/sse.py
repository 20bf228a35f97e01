"""Incremental Server-Sent Events decoder: bytes in, ``data`` payloads out.

Pure and allocation-light: the hot path splits on blank lines and hands back each
event's data payload as the exact bytes received, so a stream can be forwarded without
re-serialising anything.  ``event:``/``id:``/comment lines are dropped; multi-line data
is joined with ``\\n`` as the SSE specification says.
"""

from __future__ import annotations

_DONE = b"[DONE]"


class SSEDecoder:
    """Feed raw bytes; get complete events' data payloads back in order."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer + data if self._buffer else data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events: list[bytes] = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            payload = _event_data(buffer[start:end])
            if payload is not None:
                events.append(payload)
            start = end + 2
        self._buffer = buffer[start:]
        return events

    def flush(self) -> list[bytes]:
        """The last event of a stream that ended without its blank line."""
        rest, self._buffer = self._buffer, b""
        if not rest.strip():
            return []
        payload = _event_data(rest.rstrip(b"\n"))
        return [payload] if payload is not None else []

    @property
    def pending(self) -> int:
        return len(self._buffer)


def _event_data(block: bytes) -> bytes | None:
    if block.startswith(b"data:") and b"\n" not in block:
        return block[6:] if block[5:6] == b" " else block[5:]
    parts: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            parts.append(line[6:] if line[5:6] == b" " else line[5:])
    return b"\n".join(parts) if parts else None


def is_done(payload: bytes) -> bool:
    return payload.strip() == _DONE
