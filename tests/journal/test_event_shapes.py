"""Bodies of any legal shape reach the database: pretty-printed JSON (line breaks between
tokens, as api.openai.com sends non-streamed replies) and events larger than one read; and
each request's hash is the SHA-256 of the bytes its caller sent, whichever side made it."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from standby.journal.journal import Journal
from standby.journal.recovery import recover
from standby.journal.wal import Position
from tests.journal.conftest import Rig, rows

PRETTY_REQUEST = (
    b'{\n  "model": "gpt-4o-mini",\n  "messages": [{"role": "user", "content": "hi"}]\n}'
)
PRETTY_REPLY = (
    b'{\r\n  "id": "chatcmpl-abc",\r\n  "object": "chat.completion",\r\n'
    b'  "created": 1,\r\n  "model": "gpt-4o-mini",\r\n  "choices": [{"index": 0, '
    b'"message": {"role": "assistant", "content": "hello"}, '
    b'"finish_reason": "stop"}]\r\n}\n'
)


async def test_pretty_printed_request_and_reply_are_kept(rig: Rig) -> None:
    writer = rig.writer()
    await writer.start()
    rig.journal.accepted(
        "r1",
        endpoint="chat",
        route="m",
        model="gpt-4o-mini",
        stream=False,
        raw_body=PRETTY_REQUEST,
        metadata=None,
        store=True,
    )
    rig.journal.completed(
        "r1",
        completion_id="chatcmpl-abc",
        provider="openai",
        model="gpt-4o-mini",
        response=PRETTY_REPLY,
        usage=None,
        attempts=[("openai/gpt-4o-mini", "ok", 0.1)],
    )
    await asyncio.wait_for(writer.flush(), 5)
    stored = await rig.store.get_completion("chatcmpl-abc")
    assert stored is not None and stored.response is not None
    assert stored.response["choices"][0]["message"]["content"] == "hello"
    assert stored.request == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
    }
    await recover(rig.store, rig.wal_id)  # what a restart does: nothing to interrupt
    assert [r["state"] for r in await rows(rig.store)] == ["completed"]
    assert writer.status()["skipped_lines"] == 0


async def test_an_event_larger_than_one_read_is_applied(rig: Rig) -> None:
    writer = rig.writer()
    await writer.start()
    big = (
        b'{"model":"m","messages":[{"role":"user","content":"' + b"x" * (3 * 1024 * 1024) + b'"}]}'
    )  # a large image is legal: max_body defaults to 8 MiB
    rig.journal.accepted(
        "big",
        endpoint="chat",
        route="m",
        model="m",
        stream=False,
        raw_body=big,
        metadata=None,
        store=True,
    )
    rig.request("after")
    await asyncio.wait_for(writer.flush(), 10)
    assert sorted(r["rid"] for r in await rows(rig.store)) == ["after", "big"]


# (case, body, metadata, redact): the follower hashes a body the line carries verbatim;
# the request path hashes one it had to change (line breaks) or leave out (redacted)
HASHED = [
    ("compact, hashed by the follower", b'{"model":"m","messages":[]}', None, False),
    ("pretty, hashed on the request path", PRETTY_REQUEST, None, False),
    ("redacted, hashed on the request path", b'{"model":"m","messages":[]}', None, True),
    (
        "a key named body inside the body and the metadata",
        b'{"model":"m","x":{"a":1,"body":"}"},"messages":[]}',
        {"a": "1", "body": ',"body":{}'},
        False,
    ),
    ("a lone surrogate escape", b'{"model":"m","messages":[],"u":"\\ud800"}', None, False),
    (
        "non-ASCII text",
        '{"model":"m","messages":[],"u":"d\u00e9j\u00e0 \u2603"}'.encode(),
        None,
        False,
    ),
]


@pytest.mark.parametrize(("case", "body", "metadata", "redact"), HASHED, ids=[h[0] for h in HASHED])
async def test_the_request_hash_is_of_the_bytes_the_caller_sent(
    rig: Rig, case: str, body: bytes, metadata: dict[str, str] | None, redact: bool
) -> None:
    writer = rig.writer()
    await writer.start()
    journal = Journal(rig.wal, redact=True) if redact else rig.journal
    journal.accepted(
        "h1",
        endpoint="chat",
        route="m",
        model="m",
        stream=False,
        raw_body=body,
        metadata=metadata,
        store=False,
    )
    await asyncio.wait_for(writer.flush(), 5)
    [row] = await rows(rig.store)
    assert row["request_hash"] == hashlib.sha256(body).hexdigest()
    assert row["request_size"] == len(body)
    assert (row["request_json"] is None) == redact
    # who hashed it: a body carried byte for byte costs the request path no hash
    [line], _ = rig.wal.read(Position(1, 0))
    in_line = json.loads(line)["hash"]
    verbatim = not redact and b"\n" not in body
    assert (in_line is None) == verbatim
