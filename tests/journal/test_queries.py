"""The JournalStore queries over journaled requests: stored completions, admin rows,
deferred work, retention."""

from __future__ import annotations

import itertools

from standby.journal.journal import Journal
from standby.journal.writer import JournalWriter
from tests.journal.conftest import Rig


async def _journaled(rig: Rig) -> JournalWriter:
    writer = rig.writer()
    await writer.start()
    await writer.flush()
    return writer


async def test_a_stored_completion_comes_back_whole(rig: Rig) -> None:
    rig.request("r1", text=["Hi", "!"], metadata={"team": "a"})
    rig.request("private", store=False)
    rig.journal.failed("bad", status=503, response=b'{"error":{}}', attempts=[])
    await _journaled(rig)
    got = await rig.store.get_completion("chatcmpl-r1")
    assert got is not None
    assert (got.rid, got.model, got.provider, got.metadata) == (
        "r1",
        "gpt-4o-mini-b",
        "backup",
        {"team": "a"},
    )
    assert got.response and got.response["choices"][0]["message"]["content"] == "Hi!"
    assert got.request and got.request["model"] == "gpt-4o-mini"
    assert await rig.store.get_completion("chatcmpl-private") is None
    assert await rig.store.get_completion("nope") is None


async def test_pages_follow_the_after_cursor_both_ways(rig: Rig) -> None:
    for i in range(5):
        rig.request(f"r{i}")
    await _journaled(rig)
    ids, after, more = [], None, True
    while more:
        page, more = await rig.store.list_completions(after=after, limit=2)
        ids.append([c.rid for c in page])
        after = page[-1].completion_id
    assert ids == [["r0", "r1"], ["r2", "r3"], ["r4"]]
    page, more = await rig.store.list_completions(limit=3, order="desc")
    assert [c.rid for c in page] == ["r4", "r3", "r2"] and more
    page, more = await rig.store.list_completions(limit=3, order="desc", after="chatcmpl-r2")
    assert [c.rid for c in page] == ["r1", "r0"] and not more


async def test_filters_by_model_asked_or_answering_and_by_metadata(rig: Rig) -> None:
    rig.request("a", metadata={"team": "a", "env": "prod"})
    rig.request("b", metadata={"team": "a_b"}, model="other")
    rig.request("c", metadata={"team": "A", "note": '"team":"a"'})
    rig.request("d", metadata={"team": "axb"})
    await _journaled(rig)

    async def rids(**filters: object) -> list[str]:
        page, _ = await rig.store.list_completions(**filters)  # type: ignore[arg-type]
        return [c.rid for c in page]

    assert await rids(model="other") == ["b"]
    assert await rids(model="other-b") == ["b"]  # the model that answered
    assert await rids(metadata={"team": "a"}) == ["a"]  # not "A", not inside "note"
    assert await rids(metadata={"team": "a_b"}) == ["b"]  # "_" is no wildcard
    assert await rids(metadata={"team": "a", "env": "prod"}) == ["a"]
    assert await rids(metadata={"team": "a", "env": "dev"}) == []
    page, more = await rig.store.list_completions(metadata={"team": "a"}, limit=1)
    assert [c.rid for c in page] == ["a"] and not more


async def test_metadata_update_and_deletion(rig: Rig) -> None:
    rig.request("r1", metadata={"v": "1"})
    rig.request("r2")
    await _journaled(rig)
    updated = await rig.store.update_metadata("chatcmpl-r1", {"v": "2", "w": "x"})
    assert updated is not None and updated.metadata == {"v": "2", "w": "x"}
    page, _ = await rig.store.list_completions(metadata={"w": "x"})
    assert [c.rid for c in page] == ["r1"]
    assert await rig.store.update_metadata("missing", {"v": "1"}) is None
    assert await rig.store.delete_completion("chatcmpl-r1")
    assert not await rig.store.delete_completion("chatcmpl-r1")
    assert await rig.store.get_completion("chatcmpl-r1") is None
    page, _ = await rig.store.list_completions()
    assert [c.rid for c in page] == ["r2"]
    [row] = await rig.store.list_requests(state="completed", route="gpt-4o-mini", before="r2")
    assert row.rid == "r1" and row.request is None and row.response is None  # deleted


async def test_requests_newest_first_with_filters(rig: Rig) -> None:
    ticks = itertools.count(100)
    rig.journal = Journal(rig.wal, clock=lambda: float(next(ticks)))
    rig.request("r1", text=["x"], finish=False)
    rig.request("r2", model="other")  # accepted at 101, finished at 102
    rig.journal.failed(
        "r1",
        status=503,
        response=b'{"error":{"message":"down"}}',
        attempts=[("p/m", "unavailable", 1.5)],
    )
    await _journaled(rig)
    rows = await rig.store.list_requests()
    assert [r.rid for r in rows] == ["r2", "r1"]
    r1 = rows[1]
    assert (r1.state, r1.status, r1.content_sent, r1.attempts) == (
        "failed",
        503,
        "x",
        [("p/m", "unavailable", 1.5)],
    )
    assert r1.response == {"error": {"message": "down"}} and r1.stream
    assert [r.rid for r in await rig.store.list_requests(since=101)] == ["r2"]
    assert [r.rid for r in await rig.store.list_requests(until=101)] == ["r1"]
    assert [r.rid for r in await rig.store.list_requests(route="other")] == ["r2"]
    assert [r.rid for r in await rig.store.list_requests(limit=1)] == ["r2"]
    assert await rig.store.list_requests(before="unknown") == []


async def test_deferred_rows_due_now_oldest_first(rig: Rig) -> None:
    for rid, until in (("d1", 1000.0), ("d2", 1000.0), ("old", 10.0)):
        rig.request(rid, finish=False)
        rig.journal.deferred(rid, until=until, callback="https://cb.test/" + rid)
    rig.request("done")
    await _journaled(rig)
    due = await rig.store.pending_deferred(now=50.0)
    assert [(d.rid, d.until, d.tries) for d in due] == [
        ("d1", 1000.0, 0),
        ("d2", 1000.0, 0),
        ("old", 10.0, 0),
    ]  # "old" is due to expire
    assert due[0].callback == "https://cb.test/d1" and due[0].request["model"] == "gpt-4o-mini"
    await rig.store.note_deferred_try("d1", next_at=60.0)
    assert [d.rid for d in await rig.store.pending_deferred(now=50.0, limit=1)] == ["d2"]
    again = await rig.store.pending_deferred(now=60.0)
    assert [(d.rid, d.tries) for d in again][:1] == [("d1", 1)]


async def test_prune_deletes_what_is_older_than_the_cutoff(rig: Rig) -> None:
    ticks = iter(range(1000))
    rig.journal = Journal(rig.wal, clock=lambda: float(next(ticks)))
    for i in range(6):
        rig.request(f"r{i}")  # accepted at 0, 2, 4, ...
    await _journaled(rig)
    assert await rig.store.prune(older_than=5.0) == 3
    assert [r.rid for r in await rig.store.list_requests()] == ["r5", "r4", "r3"]
