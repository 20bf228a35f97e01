"""The request path's side of the journal: append one event, return at once.

``Journal`` encodes each event and appends it to the write-ahead log (one ``write``
syscall, no database round trip); the journal's follower process finds it there and
brings the database up to date in batches (``standby.journal.writer``).  ``NullJournal``
is the same interface doing nothing (journal off).  With ``redact=True`` bodies and stream
text are never written: only their SHA-256 and size, for privacy-sensitive plans.

The request path does as little as it can: a caller's body is embedded as the accepted
event's last value, byte for byte, so its SHA-256 is left to the follower, which hashes
those bytes in the line (``standby.journal.batch``).  Only a body the line could not
carry as it came (redacted, or with line breaks to replace) is hashed here.  On this
host a SHA-256 of a small body costs 0.4 µs warm but 40 µs on a core whose caches a
quiet moment has emptied, which is every request at a low rate.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from standby.journal import events as ev
from standby.journal.wal import WriteAheadLog

log = logging.getLogger("standby.journal")


def _clean(value: Any) -> Any:
    """``value`` with every string made valid UTF-8 (lone surrogates replaced)."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


class Journal:
    """The write-ahead-log journal; it is the ``standby.routing.sink.JournalSink`` the
    wires and the stream engine report to."""

    def __init__(
        self,
        wal: WriteAheadLog,
        *,
        redact: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.wal = wal
        self.redact = redact
        self._clock = clock
        self.lost = 0  # events that could not be written

    def _append(self, event: dict[str, Any]) -> None:
        # never fail a request because of its own record: a text orjson refuses (a lone
        # surrogate) is cleaned; a full disk is logged and counted, and serving goes on
        try:
            try:
                line = ev.encode(event)
            except orjson.JSONEncodeError:
                line = ev.encode(_clean(event))
            self.wal.write(line)
        except (OSError, TypeError, ValueError) as exc:
            self.lost += 1
            if self.lost == 1 or self.lost % 1000 == 0:
                log.error(
                    "journal: could not append to the write-ahead log (%s); %d events lost so far",
                    type(exc).__name__,
                    self.lost,
                )

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
        body = None if self.redact else ev.verbatim(raw_body)
        if body is not None:
            digest = None  # the follower hashes the body's bytes in the line
        else:
            digest = hashlib.sha256(raw_body).hexdigest()
            body = None if self.redact else ev.raw_json(raw_body)
        self._append(
            {
                "e": ev.ACCEPTED,
                "rid": rid,
                "at": self._clock(),
                "client": client,
                "endpoint": endpoint,
                "route": route,
                "model": model,
                "stream": stream,
                "store": store,
                "metadata": metadata,
                "hash": digest,
                "size": len(raw_body),
                "body": body,  # last: see body_hash in standby.journal.batch
            }
        )

    def delta(self, rid: str, text: str) -> None:
        if not self.redact and text:
            self._append({"e": ev.DELTA, "rid": rid, "text": text})

    def completed(
        self,
        rid: str,
        *,
        completion_id: str,
        provider: str,
        model: str,
        response: bytes | dict[str, Any],
        usage: dict[str, Any] | None,
        attempts: Sequence[ev.Attempt],
    ) -> None:
        body: Any = response
        if isinstance(response, bytes):
            body = ev.raw_json(response)
        if self.redact:
            body = None
        self._append(
            {
                "e": ev.FINAL,
                "rid": rid,
                "at": self._clock(),
                "state": ev.COMPLETED,
                "completion_id": completion_id,
                "provider": provider,
                "model": model,
                "status": 200,
                "response": body,
                "usage": usage,
                "attempts": list(attempts),
            }
        )

    def failed(
        self, rid: str, *, status: int, response: bytes, attempts: Sequence[ev.Attempt]
    ) -> None:
        self._append(
            {
                "e": ev.FINAL,
                "rid": rid,
                "at": self._clock(),
                "state": ev.FAILED,
                "completion_id": None,
                "provider": None,
                "model": None,
                "status": status,
                "response": ev.raw_json(response),
                "usage": None,
                "attempts": list(attempts),
            }
        )

    def client_gone(
        self,
        rid: str,
        *,
        completion_id: str,
        provider: str,
        model: str,
        sent: str,
        attempts: Sequence[ev.Attempt],
    ) -> None:
        self._append(
            {
                "e": ev.FINAL,
                "rid": rid,
                "at": self._clock(),
                "state": ev.CLIENT_GONE,
                "completion_id": completion_id,
                "provider": provider,
                "model": model,
                "status": 200,  # the stream had started: the client saw a 200
                "response": None,
                "usage": None,
                "attempts": list(attempts),
                "sent": None if self.redact else sent,
            }
        )

    def deferred(self, rid: str, *, until: float, callback: str | None) -> None:
        self._append(
            {
                "e": ev.DEFERRED,
                "rid": rid,
                "at": self._clock(),
                "until": until,
                "callback": callback,
            }
        )
