"""Turn write-ahead-log lines into the rows one transaction writes: pure, no I/O.

One batch becomes at most one statement per kind (``standby.journal.drivers`` executes
them): every stream delta of a request is joined into one append, a request ended twice
keeps its last ending, and an ending cancels a deferral logged before it in the same batch
(a later deferral still wins, because deferrals are written after endings).  Endings are
written after the deltas, so a ``client_gone`` ending's ``sent`` text replaces what the
deltas added up to.  A request accepted and ended in the same batch with no stream text
in between (every non-streamed request, nearly) becomes one complete row, written once,
instead of an insert and then an update of it.

Values are normalised for both databases: JSON re-serialised as compact text by orjson,
NUL characters (which PostgreSQL's ``text`` refuses) replaced, numbers coerced.  An event
that cannot be normalised is logged and dropped rather than poisoning its batch.

``prepare`` runs in the writer's thread and decodes and folds one line at a time, so a
parsed event (its body included) is garbage as soon as it is folded: the rows it leaves
hold plain values only, which the garbage collector does not track, and a long replay
gives the collector (whose pauses stop the event loop too) next to nothing to scan.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from standby.journal import events as ev
from standby.journal.traffic import DEFAULT_OBJECTIVE

log = logging.getLogger("standby.journal")


@dataclass(slots=True)
class Batch:
    inserts: dict[str, dict[str, Any]] = field(default_factory=dict)  # rid → row
    # rid → row of a request accepted and ended in this batch, with no text between
    finished: dict[str, dict[str, Any]] = field(default_factory=dict)
    deltas: dict[str, list[str]] = field(default_factory=dict)  # rid → text parts
    finals: dict[str, dict[str, Any]] = field(default_factory=dict)  # rid → row (upsert)
    deferrals: dict[str, dict[str, Any]] = field(default_factory=dict)  # rid → params
    metadata: dict[str, str] = field(default_factory=dict)  # completion id → JSON text
    deletes: set[str] = field(default_factory=set)  # completion ids
    # the status page's objective (``journal.traffic``): the follower's setting
    objective: float = DEFAULT_OBJECTIVE
    events: int = 0  # events folded in
    dropped: int = 0  # events that could not be normalised
    skipped: int = 0  # lines that were not events at all (torn by a crash, or not ours)


def text(value: Any) -> str | None:
    if value is None:
        return None
    found = value if value.__class__ is str else str(value)
    return found.replace("\x00", "\ufffd") if "\x00" in found else found


def dump(value: Any) -> str | None:
    """Compact JSON text (the form metadata filters match), or None for null."""
    return None if value is None else orjson.dumps(value).decode()


def _number(value: Any) -> float | None:
    number = None if value is None else float(value)
    return number if number is not None and math.isfinite(number) else None


def _time(value: Any) -> float:
    number = _number(value)
    if number is None:
        raise ValueError("an event time must be a finite number")
    return number


def _integer(value: Any) -> int | None:
    """An ``INTEGER`` column's value; one out of its 32-bit range is unknown, not an error."""
    number = None if value is None else int(value)
    return number if number is not None and -(2**31) <= number < 2**31 else None


# the keys of the rows below, in the order the database drivers bind them
# (standby.journal.drivers); a test holds them to the rows
ACCEPTED_COLUMNS = (
    "rid",
    "wal_id",
    "received_at",
    "client",
    "endpoint",
    "route",
    "model_asked",
    "stream",
    "store",
    "state",
    "request_json",
    "request_hash",
    "request_size",
    "metadata_json",
    "deferred_tries",
    "deleted",
)
# what an ending sets on the row of its request
ENDING_COLUMNS = (
    "state",
    "status",
    "completion_id",
    "provider",
    "model",
    "finished_at",
    "response_json",
    "usage_json",
    "attempts_json",
    "content_sent",
)
# an ending whose accepted row is not in the batch: the ending, and what an insert
# needs when the row is missing (never in a replay of an intact log; possible after
# retention pruned a long-deferred request)
FINAL_COLUMNS = (
    "rid",
    "wal_id",
    "received_at",
    "client",
    "endpoint",
    "route",
    "model_asked",
    "stream",
    "store",
    "deferred_tries",
    "deleted",
    *ENDING_COLUMNS,
)
# a request accepted and ended in the batch: its whole row
FINISHED_COLUMNS = (
    *ACCEPTED_COLUMNS,
    *(column for column in ENDING_COLUMNS if column not in ACCEPTED_COLUMNS),
)


def _accepted(event: dict[str, Any], wal_id: str) -> dict[str, Any]:
    metadata = event.get("metadata")
    return {
        "rid": str(event["rid"]),
        "wal_id": wal_id,
        "received_at": _time(event["at"]),
        "client": text(event.get("client")),
        "endpoint": text(event.get("endpoint")) or "",
        "route": text(event.get("route")) or "",
        "model_asked": text(event.get("model")) or "",
        "stream": bool(event.get("stream")),
        "store": bool(event.get("store")),
        "state": "accepted",
        "request_json": dump(event.get("body")),
        "request_hash": text(event.get("hash")),
        "request_size": _integer(event.get("size")),
        "metadata_json": dump(metadata) if metadata else None,
        "deferred_tries": 0,
        "deleted": False,
    }


def _ending(event: dict[str, Any]) -> dict[str, Any]:
    at = _time(event["at"])
    attempts = event.get("attempts")
    return {
        "state": str(event.get("state") or ev.FAILED),
        "status": _integer(event.get("status")),
        "completion_id": text(event.get("completion_id")),
        "provider": text(event.get("provider")),
        "model": text(event.get("model")),
        "finished_at": at,
        "response_json": dump(event.get("response")),
        "usage_json": dump(event.get("usage")),
        "attempts_json": dump(list(attempts)) if attempts else None,
        # a client_gone ending says exactly what the client received; other endings
        # (None) keep the text their stream deltas added up to
        "content_sent": text(event.get("sent")),
    }


def _final(rid: str, ending: dict[str, Any], wal_id: str) -> dict[str, Any]:
    return {
        "rid": rid,
        "wal_id": wal_id,
        "received_at": ending["finished_at"],
        "client": None,
        "endpoint": "",
        "route": "",
        "model_asked": "",
        "stream": False,
        "store": False,
        "deferred_tries": 0,
        "deleted": False,
        **ending,
    }


def _scrubbed(value: Any) -> Any:
    """``value`` with lone UTF-16 surrogates (valid JSON escapes, invalid text) replaced."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_scrubbed(item) for item in value]
    if isinstance(value, dict):
        return {_scrubbed(key): _scrubbed(item) for key, item in value.items()}
    return value


def decode_line(line: bytes) -> dict[str, Any]:
    """One log line as an event; raises ``ValueError`` if it is not one.

    orjson refuses a lone surrogate escape (``"\\ud800"``), which a caller's raw body
    may hold and the log embeds as is; the standard parser takes it, and the surrogate
    becomes U+FFFD, so such a request is journaled rather than skipped.
    """
    try:
        return ev.decode(line)
    except ValueError:
        event = _scrubbed(json.loads(line))
        if not isinstance(event, dict) or "e" not in event:
            raise
        return event


def describe(line: bytes) -> str:
    """Which event a line holds, for a log: kind and id, never content."""
    try:
        event = decode_line(line)
    except ValueError:
        return "a line"
    return f"a {event.get('e')!r} event of {event.get('rid') or event.get('completion_id')}"


def prepare(lines: Iterable[bytes], wal_id: str, batch: Batch | None = None) -> Batch:
    """Decode log lines and fold their events into ``batch`` (a new one by default)."""
    batch = Batch() if batch is None else batch
    for line in lines:
        try:
            event = decode_line(line)
        except ValueError:
            batch.skipped += 1
            continue
        if event["e"] == ev.ACCEPTED and event.get("hash") is None:
            event["hash"] = body_hash(line, event.get("size"))
        _fold_checked(batch, event, wal_id)
    return batch


_BODY_KEY = b',"body":'


def body_hash(line: bytes, size: object) -> str | None:
    """The SHA-256 of the body an accepted event's line carries verbatim as its last
    value (``size`` bytes before the closing brace), or ``None`` when the line does not
    end that way (no body kept: redacted or empty)."""
    if not isinstance(size, int) or size <= 0 or not line.endswith(b"}"):
        return None
    start = len(line) - 1 - size
    if line[start - len(_BODY_KEY) : start] != _BODY_KEY:
        return None
    return hashlib.sha256(line[start:-1]).hexdigest()


def fold(events: Iterable[dict[str, Any]], wal_id: str, batch: Batch | None = None) -> Batch:
    """The rows and updates one transaction must write for ``events`` (log order),
    added to ``batch`` (a new one by default)."""
    batch = Batch() if batch is None else batch
    for event in events:
        _fold_checked(batch, event, wal_id)
    return batch


def _fold_checked(batch: Batch, event: dict[str, Any], wal_id: str) -> None:
    try:
        _fold_one(batch, event, wal_id)
        batch.events += 1
    except (KeyError, TypeError, ValueError) as exc:
        batch.dropped += 1
        log.warning(
            "journal: dropped a malformed %r event (rid %s): %s",
            event.get("e"),
            event.get("rid"),
            type(exc).__name__,
        )


def _fold_one(batch: Batch, event: dict[str, Any], wal_id: str) -> None:
    kind = event["e"]
    if kind == ev.ACCEPTED:
        row = _accepted(event, wal_id)
        if row["rid"] not in batch.finished:  # a duplicate acc is a replay: first wins
            batch.inserts.setdefault(row["rid"], row)
    elif kind == ev.DELTA:
        value = text(event.get("text"))
        if value:
            batch.deltas.setdefault(str(event["rid"]), []).append(value)
    elif kind == ev.FINAL:
        rid, ending = str(event["rid"]), _ending(event)
        if rid in batch.finished:  # ended twice: the last ending counts
            batch.finished[rid].update(ending)
        elif rid in batch.inserts and rid not in batch.deltas:
            batch.finished[rid] = batch.inserts.pop(rid) | ending
        else:
            batch.finals[rid] = _final(rid, ending, wal_id)
        batch.deferrals.pop(rid, None)
    elif kind == ev.DEFERRED:
        rid = str(event["rid"])
        batch.deferrals[rid] = {
            "b_rid": rid,
            "b_until": _number(event.get("until")),
            "b_callback": text(event.get("callback")),
        }
    elif kind == ev.METADATA:
        batch.metadata[str(event["completion_id"])] = dump(event.get("metadata") or {}) or "{}"
    elif kind == ev.DELETED:
        batch.deletes.add(str(event["completion_id"]))
    else:
        raise ValueError(f"unknown event kind {kind!r}")
