"""The provider interface: two calls and a close, nothing else.

Every adapter maps its vendor's and its HTTP library's failures into
``standby.errors.ProviderError`` subclasses at its own edge, so the router never sees a
third-party exception.
"""

from __future__ import annotations

from typing import Protocol

from standby.canonical import Call, Chunk, Deadlines, Reply


class ChunkStream(Protocol):
    """An open stream of chunks. ``next()`` returns ``None`` once the stream is complete."""

    async def next(self) -> Chunk | None: ...

    @property
    def buffered(self) -> bool:
        """Whether ``next()`` can answer from what was already read, without waiting."""
        ...

    async def aclose(self) -> None: ...


class Provider(Protocol):
    """One upstream API account."""

    name: str
    prefill: bool  # continues a trailing assistant message (used for mid-stream continuation)

    async def send(self, call: Call, deadlines: Deadlines) -> Reply:
        """One non-streaming attempt. Raises ``ProviderError`` on any failure."""
        ...

    async def open_stream(self, call: Call, deadlines: Deadlines) -> ChunkStream:
        """Connect and check the status; the body is read through the returned stream."""
        ...

    async def aclose(self) -> None: ...
