"""The one exception tree of Standby.

    StandbyError
    ├── PlanError                 a plan file is wrong (names file, line and key)
    ├── ClientError               the caller's request is wrong; never retried
    │   ├── InvalidRequest        400 invalid_request_error
    │   ├── Unauthorized          401 (missing or unknown client key)
    │   ├── ModelNotFound         404 model_not_found
    │   └── BodyTooLarge          413
    ├── ProviderError             one attempt at one target failed
    │   ├── ConnectFailed         refused, DNS, TLS: nothing was sent
    │   ├── ResetBeforeHeaders    the connection died before a status line
    │   ├── DeadlineExceeded      connect / first token / idle deadline (``phase`` says which)
    │   ├── UpstreamStatus        an HTTP error status from the provider (kind says which)
    │   ├── MalformedReply        200 with an error body, HTML, unparseable JSON
    │   ├── StreamBroken          the stream died after it had started
    │   └── LocalLimit            Standby's own limit (a full connection pool, no file
    │                             descriptor left): says nothing about the provider
    ├── Exhausted                 no target could serve the request (503 to the caller)
    │   └── Overloaded            … because every try met a limit of Standby's own
    │                             (503 naming Standby, not the providers)
    ├── JournalUnavailable        the journal database is down or too far behind to read
    ├── BackupError               the journal could not be backed up (says why, what to do)
    ├── ChatNotFound              a conversation or message that is not there, or another
    │                             client's (the two are not told apart)
    ├── ExportUnreadable          a ChatGPT or Claude export that cannot be imported (says why)
    │   └── ExportTooLarge        … because it is bigger than the import's bounds (a zip bomb)
    └── StartupError              the gateway cannot start (busy port, bad journal URL, …)

Third-party errors (aiohttp, asyncio, ``OSError``) are mapped into this tree at the edge
by the adapters (``standby.providers.http``), raised ``from`` the original.  The attempt loop
only ever sees ``ProviderError`` subclasses and decides with ``standby.routing.outcomes``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class StandbyError(Exception):
    """Base of every error Standby raises on purpose."""


class PlanError(StandbyError):
    """A plan could not be loaded; ``str()`` names the file, line and key."""

    def __init__(
        self, message: str, *, file: str = "", line: int | None = None, key: str = ""
    ) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.detail = message
        where = file
        if line is not None:
            where = f"{where}:{line}" if where else f"line {line}"
        prefix = f"{where}: " if where else ""
        keypart = f"{key}: " if key else ""
        super().__init__(f"{prefix}{keypart}{message}")


class ClientError(StandbyError):
    """The caller's request is wrong. Rendered in the provider's own error format."""

    status = 400
    type = "invalid_request_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class InvalidRequest(ClientError):
    status = 400


class Unauthorized(ClientError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class ModelNotFound(ClientError):
    status = 404
    code = "model_not_found"


class BodyTooLarge(ClientError):
    status = 413
    code = "request_too_large"


class RateLimited(ClientError):
    """The client's own limit (``server.client_keys``: requests or tokens per minute, a
    daily token budget) is spent: a 429 with Retry-After and the ``x-ratelimit-*`` figures."""

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        kind: str = "requests",
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = headers
        self.type = kind  # "requests" or "tokens", as OpenAI says which limit it was


class ProviderError(StandbyError):
    """One attempt failed. ``target`` is ``provider/model``; set by the attempt loop."""

    def __init__(self, message: str, *, target: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.target = target


class ConnectFailed(ProviderError):
    """Refused, DNS or TLS failure: the request never reached the provider."""


class ResetBeforeHeaders(ProviderError):
    """The connection closed or reset before any response header arrived."""


class DeadlineExceeded(ProviderError):
    """An attempt deadline fired. ``phase`` is ``connect``, ``first_token`` or ``idle``."""

    def __init__(self, message: str, *, phase: str, target: str = "") -> None:
        super().__init__(message, target=target)
        self.phase = phase


class UpstreamKind(StrEnum):
    """What an error status from a provider means; ``routing.outcomes`` maps each kind to
    retry the same target, fail over, or stop.  A ``StrEnum``: it compares equal to, and
    renders as, its value (``"rate_limited"``), in logs, metrics and the journal alike."""

    RATE_LIMITED = "rate_limited"  # 429: hold the target until Retry-After
    SERVER_ERROR = "server_error"  # 5xx, 408: transient, one retry
    UNAVAILABLE = "unavailable"  # 503, 529: overloaded or down
    AUTH = "auth"  # 401/402/403, a bad key, an exhausted quota
    CONTEXT_LENGTH = "context_length"  # the prompt does not fit this model
    CONTENT_POLICY = "content_policy"  # refused by the provider's policy: final
    PREFILL_REJECTED = "prefill_rejected"  # an assistant prefill refused (set by routing)
    INVALID_REQUEST = "invalid_request"  # the caller's request is wrong: final
    NOT_FOUND = "not_found"  # the target's model does not exist there


class UpstreamStatus(ProviderError):
    """The provider answered with an error status; ``kind`` says what it means."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        kind: UpstreamKind,
        body: dict[str, Any] | None = None,
        retry_after: float | None = None,
        target: str = "",
        limits: tuple[int | None, int | None] = (None, None),
    ) -> None:
        super().__init__(message, target=target)
        self.status = status
        self.limits = limits  # the (requests, tokens) per minute its headers said, if any
        # a value's string is accepted at run time too (and checked: a kind that does not
        # exist raises ValueError here, not somewhere downstream)
        self.kind = UpstreamKind(kind)
        self.body = body
        self.retry_after = retry_after


class MalformedReply(ProviderError):
    """A 2xx reply that is not a usable answer (error body, HTML page, bad JSON)."""


class StreamBroken(ProviderError):
    """A stream died after it started (reset, EOF without finish, idle deadline)."""


class LocalLimit(ProviderError):
    """An attempt could not even start because of a limit of Standby's own (the
    provider's connection pool stayed full, the process ran out of file descriptors).

    It is not the provider's failure: it never touches a breaker or a signal about the
    provider, and a caller who gets nothing else is told Standby is the cause
    (``Overloaded``).
    """


class CapacityShort(LocalLimit):
    """A target's capacity for this minute (``providers.*.limits``, shared out by the
    clients' priorities) has no room for this request: it is not tried, and nothing is
    counted against its health."""

    def __init__(self, message: str, *, retry_after: float, target: str = "") -> None:
        super().__init__(message, target=target)
        self.retry_after = retry_after


class Exhausted(StandbyError):
    """Every candidate target failed or was skipped; the caller gets a 503."""

    def __init__(
        self, message: str, *, retry_after: float, last: ProviderError | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.last = last


class Overloaded(Exhausted):
    """Every try of the request met a limit of Standby's own (``LocalLimit``): the
    providers may be fine, this gateway is full.  The caller's 503 says so."""


class Throttled(Exhausted):
    """Nothing could answer, and at least one target was left out only because its
    capacity is kept for higher-priority clients or spent this minute: an honest 429 with
    Retry-After (or a deferral, where the route allows one), not a 503."""


class JournalUnavailable(StandbyError):
    """The journal database could not be brought up to date in time (it is down or far
    behind). Requests are still journaled in the write-ahead log; only reads fail."""


class BackupError(StandbyError):
    """The journal could not be backed up; ``str()`` says why and what to do."""


class ChatNotFound(StandbyError):
    """A conversation or message the caller asked for does not exist, or belongs to
    another client: a client cannot tell the two apart."""


class ExportUnreadable(StandbyError):
    """A ChatGPT or Claude data export cannot be imported: not a zip file, no
    ``conversations.json`` in it, or not the JSON the export writes; ``str()`` says which."""


class ExportTooLarge(ExportUnreadable):
    """An export's member is bigger than the import's bounds once uncompressed, or
    compressed more than any real export is (a zip bomb): refused before it is read."""


class StartupError(StandbyError):
    """The gateway (or the sim) cannot start; ``str()`` is one line saying why and what to do."""
