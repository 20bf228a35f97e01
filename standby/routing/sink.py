"""What the request path reports to the journal, defined where it is used.

The wires and the stream engine say what happened to a request through ``JournalSink``;
``standby.journal.journal.Journal`` implements it over the write-ahead log, and
``NullJournal`` is the journal switched off.  Keeping the protocol here, with its
consumers, is what lets ``routing`` know nothing of ``journal``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

# one try as the journal records it: (target, outcome, seconds), and a fourth element
# "mid_answer" when a stream broke after the client had received some of the answer
Attempt = tuple[str, str, float] | tuple[str, str, float, str]


class JournalSink(Protocol):
    """What the wire handlers and the stream engine call. Every method is non-blocking."""

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
    ) -> None: ...

    def delta(self, rid: str, text: str) -> None: ...

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
    ) -> None: ...

    def failed(
        self, rid: str, *, status: int, response: bytes, attempts: Sequence[Attempt]
    ) -> None: ...

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
        """The client left its stream, which was cancelled; it had received ``sent``."""
        ...

    def deferred(self, rid: str, *, until: float, callback: str | None) -> None: ...


class NullJournal:
    """The journal switched off."""

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
        pass

    def delta(self, rid: str, text: str) -> None:
        pass

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
        pass

    def failed(
        self, rid: str, *, status: int, response: bytes, attempts: Sequence[Attempt]
    ) -> None:
        pass

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
        pass

    def deferred(self, rid: str, *, until: float, callback: str | None) -> None:
        pass


class PassThrough:
    """A sink in front of another that passes every call on unchanged: a subclass
    overrides only the calls it changes (``Metered`` counts tokens at ``completed``; the
    Responses wire stores its own shape)."""

    __slots__ = ("inner",)

    def __init__(self, inner: JournalSink) -> None:
        self.inner = inner

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
        self.inner.accepted(
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
        self.inner.delta(rid, text)

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
        self.inner.completed(
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
        self.inner.failed(rid, status=status, response=response, attempts=attempts)

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
        self.inner.client_gone(
            rid,
            completion_id=completion_id,
            provider=provider,
            model=model,
            sent=sent,
            attempts=attempts,
        )

    def deferred(self, rid: str, *, until: float, callback: str | None) -> None:
        self.inner.deferred(rid, until=until, callback=callback)
