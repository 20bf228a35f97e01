"""Journal events: what happened to a request, one self-contained record each.

Every event is appended to the write-ahead log (``journal.wal``) *before* the gateway acts
on it — a request is on disk before it is forwarded, a stream's text before it is sent —
and the database is brought up to date from that log in batches, off the request path
(``journal.writer``).  So the log is also the spool when the database is away, and the
recovery source after a crash.

A WAL line is one JSON object with ``"e"`` naming the event:

=========  ===============================================================================
``acc``    accepted: ``rid, at, client, endpoint, route, model, stream, store, metadata``,
           ``hash``, ``size``, ``body`` (the caller's JSON body, or ``null`` when content
           is redacted); ``client`` is the name of the caller's client key (``null`` on
           an open gateway).  ``body`` comes last and, when ``hash`` is ``null``, holds
           exactly the ``size`` bytes the caller sent, which the follower hashes
           (``standby.journal.batch``); older lines always carry the hash
``dlt``    stream text the client is about to receive: ``rid, text``
``fin``    the request ended: ``rid, at, state`` (``completed`` / ``failed`` /
           ``client_gone``), ``completion_id, provider, model, status, response`` (the
           JSON answer, or the error body), ``usage``, ``attempts`` (list of
           ``[target, outcome, seconds]``, plus ``"mid_answer"`` for a stream's try
           that broke after the client had received some of it); a ``client_gone``
           ending (the client left a stream, which was then cancelled upstream) has no
           response nor usage, and ``sent``: exactly the stream text the client
           received (``null`` when content is redacted), which replaces what its
           ``dlt`` events added up to (the last of them may be text that was in flight
           and never reached the client)
``dfr``    deferred: ``rid, at, until`` (give up after), ``callback``
``meta``   stored-completion metadata replaced: ``completion_id, metadata``
``del``    stored completion deleted: ``completion_id``
=========  ===============================================================================

Raw JSON bodies are embedded with ``orjson.Fragment``: never parsed or re-serialised.
"""

from __future__ import annotations

import random
import secrets
import time
from typing import Any

import orjson

ACCEPTED, DELTA, FINAL, DEFERRED, METADATA, DELETED = "acc", "dlt", "fin", "dfr", "meta", "del"
COMPLETED, FAILED, INTERRUPTED, DEFERRED_STATE = "completed", "failed", "interrupted", "deferred"
CLIENT_GONE = "client_gone"  # a final state, like completed and failed
MID_ANSWER = "mid_answer"  # an attempt's fourth element: the stream broke after content

# one try as a ``fin`` event lists it: (target, outcome, seconds[, "mid_answer"])
Attempt = tuple[str, str, float] | tuple[str, str, float, str]


class RequestIds:
    """Request ids, time-ordered and unique: ``req_`` + nanosecond clock (hex) + 8 random
    hex digits.  The random part comes from a generator seeded once from the system's
    entropy: an id needs uniqueness, not secrecy (a request is reached only by its
    owner's key), and asking the kernel for four bytes per request was 3 % of a proxied
    request's CPU."""

    __slots__ = ("_bits",)

    def __init__(self) -> None:
        self._bits = random.Random(secrets.randbits(128)).getrandbits

    def __call__(self) -> str:
        return f"req_{time.time_ns():016x}{self._bits(32):08x}"


def new_request_id() -> str:
    """One request id, from the system's entropy (for tools; the gateway uses
    ``RequestIds``)."""
    return f"req_{time.time_ns():016x}{secrets.token_hex(4)}"


def encode(event: dict[str, Any]) -> bytes:
    """One WAL line (JSON + newline). Values may be ``orjson.Fragment`` (raw JSON)."""
    return orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE)


def decode(line: bytes) -> dict[str, Any]:
    event = orjson.loads(line)
    if not isinstance(event, dict) or "e" not in event:
        raise ValueError("not a journal event")
    return event


def verbatim(data: bytes) -> orjson.Fragment | None:
    """``data`` (valid JSON) embedded byte for byte, or ``None`` when it cannot be: it is
    empty, or holds a line break (``raw_json`` replaces those)."""
    if not data or b"\n" in data or b"\r" in data:
        return None
    return orjson.Fragment(data)


def raw_json(data: bytes | None) -> orjson.Fragment | None:
    """Embed already-serialised, valid JSON (a request or response body) as is.

    A WAL event is one line, so line breaks go: in valid JSON they can only be whitespace
    between tokens (never inside a string, where they must be escaped), so replacing them
    with spaces keeps the document the same.
    """
    if not data:
        return None
    return verbatim(data) or orjson.Fragment(data.replace(b"\r", b" ").replace(b"\n", b" "))
