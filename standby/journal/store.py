"""What the rest of Standby may ask of the journal's database.

``standby.journal.sql.SQLStore`` implements it over SQLAlchemy Core (SQLite or
PostgreSQL).  Readers that must see their own writes call ``JournalWriter.flush()``
first: the database trails the write-ahead log by one batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class StoredCompletion:
    """One answered chat completion, as the stored-completions API returns it."""

    completion_id: str
    rid: str
    created: float  # when the request was accepted (unix seconds)
    model: str  # the model that answered
    provider: str
    request: dict[str, Any] | None  # the caller's body (None when redacted)
    response: dict[str, Any] | None  # the chat.completion object (None when redacted)
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """One answered Responses API request: what ``previous_response_id`` reads back."""

    request: dict[str, Any] | None  # the caller's body (None when redacted)
    response: dict[str, Any] | None  # the Response object (None when redacted)


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One journaled request with its outcome, for the admin view and exports."""

    rid: str
    received_at: float
    endpoint: str
    route: str
    model_asked: str
    stream: bool
    state: str  # accepted | completed | failed | interrupted | deferred
    status: int | None
    completion_id: str | None
    provider: str | None
    model: str | None
    finished_at: float | None
    attempts: list[tuple[str, str, float]]  # (target, outcome, seconds)
    request: dict[str, Any] | None
    response: dict[str, Any] | None
    content_sent: str | None  # stream text already delivered (interrupted requests)
    usage: dict[str, Any] | None
    metadata: dict[str, str] = field(default_factory=dict)
    client: str | None = None  # the client key's name (None: an open gateway)


@dataclass(frozen=True, slots=True)
class DeferredRow:
    rid: str
    received_at: float
    until: float  # give up after
    callback: str | None
    route: str
    request: dict[str, Any]
    tries: int


class JournalStore(Protocol):
    """The journal database as the rest of Standby reads it.

    ``owner`` limits a read to the rows of one client (the name of its client key);
    ``None`` reads everyone's (the admin token, an open gateway).
    """

    async def get_completion(
        self, completion_id: str, *, owner: str | None = None
    ) -> StoredCompletion | None: ...

    async def get_response(
        self, response_id: str, *, owner: str | None = None
    ) -> StoredResponse | None:
        """A stored Responses answer (for ``previous_response_id``), or ``None``."""
        ...

    async def list_completions(
        self,
        *,
        model: str | None = None,
        metadata: dict[str, str] | None = None,
        after: str | None = None,
        limit: int = 20,
        order: Literal["asc", "desc"] = "asc",
        owner: str | None = None,
    ) -> tuple[list[StoredCompletion], bool]:
        """A page of stored completions and whether more follow (cursor: ``after``)."""
        ...

    async def update_metadata(
        self, completion_id: str, metadata: dict[str, str], *, owner: str | None = None
    ) -> StoredCompletion | None: ...

    async def delete_completion(self, completion_id: str, *, owner: str | None = None) -> bool: ...

    async def list_requests(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        state: str | None = None,
        route: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[RequestRow]:
        """Newest first; ``before`` is a request id cursor."""
        ...

    async def pending_deferred(self, now: float, limit: int = 10) -> list[DeferredRow]:
        """Deferred requests due for a try, oldest first, including those past their
        deadline (the runner expires those itself)."""
        ...

    async def claim_deferred(self, rid: str, now: float, lease: float) -> bool:
        """Take a due deferred request for one try (False: another replica has it)."""
        ...

    async def note_deferred_try(self, rid: str, next_at: float) -> None: ...

    async def prune(self, older_than: float) -> int: ...
