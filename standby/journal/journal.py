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

With ``gather=True`` (what the gateway uses) the events of one pass of the event loop
leave in one ``write``: the first event of a pass schedules ``flush`` for the end of that
pass (``call_soon``), and later ones join it.  Profiled at saturation, the two ``write``
calls of a request were more than half of what the journal cost the gateway's core.

What makes this safe is the order kept with the client: the gateway's connections hand
their own bytes to the socket at the end of the pass too, and call ``flush`` before they
do (``standby.web.writes``), so nothing a client receives — an answer, a streamed text,
a 202 — gets there before the events that record it are in the kernel.  (A deferred
request's callback is posted by a task begun after its event, so in a later pass than the
flush that event scheduled.)  A ``kill -9`` therefore never loses an answer a client was
given; what it can lose is the last pass's events whose bytes had not left either (an
``accepted`` event among them: that request's provider may have been asked, its client
was told nothing).  Outside a running event loop an event is written at once.
"""

from __future__ import annotations

import asyncio
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
        gather: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.wal = wal
        self.redact = redact
        self.gather = gather
        self._clock = clock
        self._pending: list[bytes] = []  # this pass's lines (gather=True)
        self.lost = 0  # events that could not be written

    def _append(self, event: dict[str, Any]) -> None:
        # never fail a request because of its own record: a text orjson refuses (a lone
        # surrogate) is cleaned; a full disk is logged and counted, and serving goes on
        try:
            try:
                line = ev.encode(event)
            except orjson.JSONEncodeError:
                line = ev.encode(_clean(event))
        except (TypeError, ValueError) as exc:
            self._lose(exc, 1)
            return
        if not self.gather:
            self._write(line, 1)
            return
        pending = self._pending
        pending.append(line)
        if len(pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no event loop running here: nothing to gather with
                self.flush()

    def flush(self) -> None:
        """Write the events gathered so far (``gather=True``) in one ``write``."""
        pending = self._pending
        if not pending:
            return
        count = len(pending)
        data = pending[0] if count == 1 else b"".join(pending)
        pending.clear()
        self._write(data, count)

    def _write(self, data: bytes, events: int) -> None:
        try:
            self.wal.write(data)
        except (OSError, ValueError) as exc:
            self._lose(exc, events)

    def _lose(self, exc: Exception, events: int) -> None:
        before = self.lost
        self.lost += events
        if before == 0 or before // 1000 != self.lost // 1000:  # the first, then every 1,000th
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
