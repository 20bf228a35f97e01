"""The provider interface: two calls and a close, nothing else.

Every adapter maps its vendor's and its HTTP library's failures into
``standby.errors.ProviderError`` subclasses at its own edge, so the router never sees a
third-party exception.

An adapter bounds how many attempts use its connections at once (``max_connections``).
An attempt first waits, briefly and in a bounded queue, for one of those slots; its
deadlines start only once it has one.  No slot in time, or no file descriptor left to
connect, is ``LocalLimit`` — Standby's own limit, which says nothing about the provider.
"""

from __future__ import annotations

from typing import Protocol

from standby.canonical import Call, Chunk, Deadlines, Reply


class ChunkStream(Protocol):
    """An open stream of chunks. ``next()`` returns ``None`` once the stream is complete.

    ``aclose()`` must be called once the stream is no longer read: it gives the
    connection (and its slot) back.
    """

    # the event loop's time when the attempt's deadlines started: after the wait for a
    # connection slot, which is Standby's time, not the provider's
    started: float

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
        """One non-streaming attempt. Raises ``ProviderError`` on any failure
        (``LocalLimit`` when no connection slot freed up in time)."""
        ...

    async def open_stream(self, call: Call, deadlines: Deadlines) -> ChunkStream:
        """Connect and check the status; the body is read through the returned stream,
        which holds a connection slot until it is closed."""
        ...

    async def aclose(self) -> None: ...
