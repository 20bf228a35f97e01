"""Bodies of any legal shape reach the database: pretty-printed JSON (line breaks between
tokens, as api.openai.com sends non-streamed replies) and events larger than one read."""

from __future__ import annotations

import asyncio

from standby.journal.recovery import recover
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
