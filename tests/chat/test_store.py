"""ChatStore on a real SQLite file and a real PostgreSQL database: the message tree and
its branches, streaming updates, owners kept apart, search, listing and exports."""

from __future__ import annotations

import orjson
import pytest

from standby.chat.model import Conversation, Message, Thread, derived_id
from standby.chat.search import MARK_END, MARK_START, parse_query
from standby.chat.store import ChatStore
from standby.errors import ChatNotFound
from tests.chat.conftest import Clock


async def _exchange(chat: ChatStore, owner: str | None, title: str, *turns: str) -> Conversation:
    """A conversation of alternating user and assistant messages, one line each."""
    made = await chat.create(owner, title=title)
    parent = None
    for n, text in enumerate(turns):
        role = "user" if n % 2 == 0 else "assistant"
        message = await chat.add_message(owner, made.id, role=role, content=text, parent_id=parent)
        parent = message.id
    return made


async def _text(chunks: object) -> str:
    return "".join([piece async for piece in chunks])  # type: ignore[attr-defined]


async def test_an_edited_question_is_a_sibling_and_each_branch_reads_back(
    chat: ChatStore, clock: Clock
) -> None:
    conv = await chat.create("alice", title="Trip")
    question = await chat.add_message("alice", conv.id, role="user", content="Rome or Paris?")
    clock.advance()
    first = await chat.add_message(
        "alice", conv.id, role="assistant", content="Rome.", parent_id=question.id, model="m1"
    )
    clock.advance()
    again = await chat.add_message(
        "alice", conv.id, role="assistant", content="Paris.", parent_id=question.id, model="m2"
    )
    clock.advance()
    edited = await chat.add_message("alice", conv.id, role="user", content="Rome or Lisbon?")
    clock.advance()
    answer = await chat.add_message(
        "alice", conv.id, role="assistant", content="Lisbon.", parent_id=edited.id
    )

    thread = await chat.get("alice", conv.id)
    assert thread is not None
    assert thread.conversation.current_message_id == answer.id
    assert [m.content for m in thread.branch()] == ["Rome or Lisbon?", "Lisbon."]
    assert [m.id for m in thread.siblings(first.id)] == [first.id, again.id]
    assert [m.id for m in thread.children(None)] == [question.id, edited.id]
    assert thread.latest_leaf(question.id) == again
    assert len(thread.messages) == 5

    path = await chat.branch("alice", conv.id, first.id)
    assert [m.content for m in path] == ["Rome or Paris?", "Rome."]
    await chat.set_current("alice", conv.id, first.id)
    assert [m.content for m in await chat.branch("alice", conv.id)] == ["Rome or Paris?", "Rome."]
    with pytest.raises(ChatNotFound):
        await chat.branch("alice", conv.id, "msg_nope")
    with pytest.raises(ChatNotFound):  # a parent from another conversation
        other = await chat.create("alice")
        await chat.add_message("alice", other.id, role="user", parent_id=question.id)


async def test_an_answer_streams_then_ends_with_its_model_and_a_continuation(
    chat: ChatStore, clock: Clock
) -> None:
    conv = await chat.create(None)
    question = await chat.add_message(None, conv.id, role="user", content="Tell me a story")
    answer = await chat.add_message(
        None, conv.id, role="assistant", parent_id=question.id, state="streaming"
    )
    await chat.update_message(None, answer.id, content="Once upon")
    clock.advance(5)
    done = await chat.update_message(
        None,
        answer.id,
        content="Once upon a time, a lighthouse keeper",
        state="done",
        model="claude-haiku",
        provider="anthropic",
        continued=True,
        request_id="req_1",
        extra={"usage": {"total_tokens": 9}},
    )
    assert done.state == "done" and done.continued and done.model == "claude-haiku"
    thread = await chat.get(None, conv.id)
    assert thread is not None
    assert thread.message(answer.id) == done
    assert thread.conversation.updated_at == clock.now
    assert [h.message_id for h in await chat.search(None, "lighthouse")] == [answer.id]
    assert await chat.search(None, "upon*") and not await chat.search(None, "dragons")
    with pytest.raises(ValueError):
        await chat.update_message(None, answer.id, state="exploded")  # type: ignore[arg-type]
    with pytest.raises(ChatNotFound):
        await chat.update_message(None, "msg_nope", content="x")


async def test_one_client_never_sees_another_clients_conversations(chat: ChatStore) -> None:
    alice = await _exchange(chat, "alice", "Alice's plans", "secret orchid project", "noted")
    bob = await _exchange(chat, "bob", "Bob's", "orchid care", "water weekly")

    assert [c.id for c in await chat.conversations("bob")] == [bob.id]
    assert await chat.get("bob", alice.id) is None
    assert [h.conversation.id for h in await chat.search("bob", "orchid")] == [bob.id]
    assert not await chat.rename("bob", alice.id, "mine now")
    assert not await chat.delete("bob", alice.id)
    with pytest.raises(ChatNotFound):
        await chat.add_message("bob", alice.id, role="user", content="hi")
    thread = await chat.get("alice", alice.id)
    assert thread is not None
    with pytest.raises(ChatNotFound):
        await chat.update_message("bob", thread.messages[0].id, content="changed")
    with pytest.raises(ChatNotFound):
        await chat.set_current("bob", alice.id, thread.messages[0].id)
    with pytest.raises(ChatNotFound):
        [x async for x in chat.export_json("bob", alice.id)]
    everything = await _text(chat.export_markdown("bob"))
    assert "secret orchid" not in everything and "orchid care" in everything
    # a name that is another's as a prefix, or empty, is another owner
    assert await chat.search("alic", "orchid") == [] and await chat.search("", "orchid") == []
    # None (single user, admin) sees all
    assert {c.id for c in await chat.conversations(None)} == {alice.id, bob.id}
    assert len(await chat.search(None, "orchid")) == 2


async def test_search_ranks_conversations_and_marks_the_match(
    chat: ChatStore, clock: Clock
) -> None:
    much = await _exchange(
        chat,
        "u",
        "Gardening",
        "How do I prune tomato plants?",
        "Prune tomato suckers weekly; tomato plants grow back. Tomato, tomato.",
        "and tomato cages?",
        "Cages keep tomato stems upright.",
    )
    clock.advance()
    once = await _exchange(
        chat, "u", "Groceries", "list: bread, milk, eggs, butter, cheese, a tomato, rice", "ok"
    )
    clock.advance()
    titled = await _exchange(chat, "u", "Tomato soup", "a recipe please", "Simmer and blend.")
    clock.advance()
    await _exchange(chat, "u", "Nothing here", "hello", "hi")

    hits = await chat.search("u", "tomato")
    assert {h.conversation.id for h in hits} == {much.id, once.id, titled.id}
    assert len(hits) == 3  # one hit per conversation, however many messages match
    assert hits[0].conversation.id in (much.id, titled.id)
    assert hits[-1].conversation.id == once.id
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for hit in hits:
        assert MARK_START in hit.snippet and MARK_END in hit.snippet
        assert ("tomato", True) in [(text.lower(), marked) for text, marked in hit.segments()]
        assert MARK_START not in hit.text
    title_hit = next(h for h in hits if h.conversation.id == titled.id)
    assert title_hit.message_id is None and title_hit.text == "Tomato soup"
    # everyone's search (the admin, a single user) ranks as the owner's when few match
    everyone = await chat.search(None, "tomato")
    assert [(h.conversation.id, h.message_id) for h in everyone] == [
        (h.conversation.id, h.message_id) for h in hits
    ]

    assert len(await chat.search("u", "tomato", limit=2)) == 2
    assert [h.conversation.id for h in await chat.search("u", '"tomato cages"')] == [much.id]
    assert [h.conversation.id for h in await chat.search("u", "bread tomato")] == [once.id]
    assert [h.conversation.id for h in await chat.search("u", "groc*")] == [once.id]
    assert [h.conversation.id for h in await chat.search("u", "gardenin*")] == [much.id]
    # what would be query syntax is only text
    for query in ('tomato" OR "x', "NEAR(tomato", "tomato AND", "*", "owner : o75", '"', "-"):
        await chat.search("u", query)
    assert await chat.search("u", "   ") == [] and await chat.search("u", "!!!") == []

    assert await chat.rename("u", titled.id, "Gazpacho")
    assert titled.id not in {h.conversation.id for h in await chat.search("u", "soup")}
    assert [h.conversation.id for h in await chat.search("u", "gazpacho")] == [titled.id]
    assert await chat.delete("u", much.id)
    assert much.id not in {h.conversation.id for h in await chat.search("u", "tomato")}
    assert await chat.get("u", much.id) is None


def test_a_query_is_words_phrases_and_a_prefix() -> None:
    terms = parse_query('deploy "blue green" rollb* -- ""  c++ ' + "x " * 40)
    assert [(t.text, t.prefix) for t in terms[:4]] == [
        ("deploy", False),
        ("blue green", False),
        ("rollb", True),
        ("c++", False),
    ]
    assert len(terms) == 16


async def test_conversations_are_listed_newest_first_a_page_at_a_time(
    chat: ChatStore, clock: Clock
) -> None:
    made = []
    for n in range(7):
        clock.advance()
        made.append(await chat.create("p", title=f"c{n}"))
    clock.advance()
    await chat.add_message("p", made[2].id, role="user", content="bump")  # now the newest
    order = [made[2].id] + [c.id for c in reversed(made) if c.id != made[2].id]
    pages, before = [], None
    while page := await chat.conversations("p", limit=3, before=before):
        pages.append([c.id for c in page])
        before = page[-1].cursor
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [cid for page in pages for cid in page] == order


async def test_exports_name_the_models_mark_continuations_and_keep_every_branch(
    chat: ChatStore, clock: Clock
) -> None:
    conv = await chat.create("e", title="Outage day")
    question = await chat.add_message("e", conv.id, role="user", content="Status?")
    old = await chat.add_message(
        "e", conv.id, role="assistant", content="Old answer", parent_id=question.id
    )
    clock.advance()
    answer = await chat.add_message(
        "e",
        conv.id,
        role="assistant",
        content="All green.",
        parent_id=question.id,
        model="gpt-4o",
        provider="openai",
        continued=True,
    )
    stopped = await chat.add_message(
        "e", conv.id, role="user", content="More?", parent_id=answer.id, state="stopped"
    )

    text = await _text(chat.export_markdown("e", conv.id))
    assert text.startswith("# Outage day\n")
    assert "## Assistant · gpt-4o via openai" in text
    assert "continued on another target after the stream broke" in text
    assert "stopped before the end" in text
    assert "Old answer" not in text  # Markdown: the branch on show only
    assert text.index("Status?") < text.index("All green.") < text.index("More?")

    document = orjson.loads(b"".join([p async for p in chat.export_json("e", conv.id)]))
    assert document["format"] == "standby.chat" and document["version"] == 1
    [record] = document["conversations"]
    assert record["current_message_id"] == stopped.id
    by_id = {m["id"]: m for m in record["messages"]}
    assert set(by_id) == {question.id, old.id, answer.id, stopped.id}
    assert by_id[answer.id]["parent_id"] == question.id and by_id[answer.id]["continued"]

    await _exchange(chat, "e", "Second", "again?", "yes")
    everything = orjson.loads(b"".join([p async for p in chat.export_json("e")]))
    assert [c["title"] for c in everything["conversations"]] == ["Second", "Outage day"]
    markdown = await _text(chat.export_markdown("e"))
    assert markdown.count("\n---\n") == 1 and "# Second" in markdown
    empty = orjson.loads(b"".join([p async for p in chat.export_json("nobody")]))
    assert empty["conversations"] == []


async def test_imported_threads_are_written_once(chat: ChatStore) -> None:
    conv_id = derived_id("conv", "chatgpt", "abc", "imp")
    conv = Conversation(conv_id, "imp", "Imported", 10.0, 20.0, "chatgpt", "abc", None)
    first = Message(derived_id("msg", conv_id, "n1"), conv_id, None, "user", "alpha", 11.0)
    second = Message(derived_id("msg", conv_id, "n2"), conv_id, first.id, "assistant", "beta", 12)
    conv = Conversation(conv_id, "imp", "Imported", 10.0, 20.0, "chatgpt", "abc", second.id)
    stored = await chat.add_threads([Thread(conv, (first,))])
    assert [(s.created, s.messages) for s in stored] == [(True, 1)]
    again = await chat.add_threads([Thread(conv, (first, second))])
    assert [(s.created, s.messages) for s in again] == [(False, 1)]
    assert [(s.created, s.messages) for s in await chat.add_threads([Thread(conv, (first,))])] == [
        (False, 0)
    ]
    thread = await chat.get("imp", conv_id)
    assert thread is not None and [m.content for m in thread.branch()] == ["alpha", "beta"]
    assert [h.conversation.id for h in await chat.search("imp", "beta")] == [conv_id]
    assert await chat.get("other", conv_id) is None


async def test_answers_left_queued_or_streaming_are_found_for_a_restart(
    chat: ChatStore, clock: Clock
) -> None:
    mine = await _exchange(chat, "ana", "One", "q")
    other = await _exchange(chat, None, "Two", "q")
    queued = await chat.add_message("ana", mine.id, role="assistant", state="queued")
    clock.advance()
    cut = await chat.add_message(None, other.id, role="assistant", state="streaming")
    await chat.add_message(None, other.id, role="assistant", content="whole", state="done")
    assert await chat.pending() == [("ana", queued), (None, cut)]


async def test_a_word_in_most_messages_brings_the_newest_matches(
    chat: ChatStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # beyond WINDOW matches, PostgreSQL ranks the newest WINDOW and SQLite lists the
    # newest first: either way the newest come first and the cost stays bounded
    monkeypatch.setattr("standby.chat.fts5.WINDOW", 3)
    monkeypatch.setattr("standby.chat.tsvector.WINDOW", 3)
    made = []
    for n in range(8):
        clock.advance(7200)  # hours apart: FTS5's rowids run by the hour
        made.append(await _exchange(chat, "w", f"day {n}", f"weather report {n}", "sunny"))
    hits = await chat.search("w", "weather")
    assert {h.conversation.id for h in hits[:3]} == {c.id for c in made[-3:]}
    if chat.engine.dialect.name == "sqlite":
        assert [h.conversation.id for h in hits] == [c.id for c in reversed(made)]
    else:
        assert len(hits) == 3
    rare = await chat.search("w", '"report 0"')  # fewer matches than the window: ranked
    assert [h.conversation.id for h in rare] == [made[0].id]
    monkeypatch.setattr("standby.chat.fts5.COMMON", 2)  # "report" is then too common for bm25
    assert [h.conversation.id for h in await chat.search("w", "report 0")] == [made[0].id]
    both = await chat.search("w", "weather report")
    assert {h.conversation.id for h in both[:3]} == {c.id for c in made[-3:]}


async def test_everyones_search_beyond_the_ranked_matches_brings_the_newest(
    chat: ChatStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # owner None (the admin, or the single user without client keys): beyond RANKED
    # matching messages PostgreSQL lists the newest first, as SQLite does beyond WINDOW
    monkeypatch.setattr("standby.chat.fts5.WINDOW", 3)
    monkeypatch.setattr("standby.chat.tsvector.RANKED", 3)
    titled = await _exchange(chat, "ann", "Weather log", "hello")
    made = []
    for n in range(5):
        clock.advance(7200)  # hours apart: FTS5's rowids run by the hour
        owner = "ann" if n % 2 else None
        made.append(await _exchange(chat, owner, f"day {n}", f"weather report {n}", "sunny"))
    clock.advance(7200)
    chatty = await _exchange(chat, "bob", "long day", *["weather?", "rain"] * 9)
    clock.advance(7200)
    await _exchange(chat, None, "evening", "ok", "ok")  # the newest messages do not match
    newest = [chatty.id, *(c.id for c in reversed(made)), titled.id]

    hits = await chat.search(None, "weather")
    assert [h.conversation.id for h in hits] == newest
    assert hits[0].message_id is not None and ("weather", True) in hits[0].segments()
    # the newest matches are all in one conversation: more are read to fill two
    assert [h.conversation.id for h in await chat.search(None, "weather", limit=2)] == newest[:2]
    monkeypatch.setattr("standby.chat.tsvector.SCAN", 2)  # the walk finds none: the index
    assert [h.conversation.id for h in await chat.search(None, "weather", limit=2)] == newest[:2]
    assert [h.conversation.id for h in await chat.search(None, "weather")] == newest
    rare = await chat.search(None, '"report 0"')  # no more than RANKED: ranked
    assert [h.conversation.id for h in rare] == [made[0].id]
    anns = {h.conversation.id for h in await chat.search("ann", "weather")}  # ranked
    assert anns == {made[3].id, made[1].id, titled.id}
    if chat.engine.dialect.name == "postgresql":
        # a title matches as of its conversation's last activity
        clock.advance(7200)
        await chat.add_message("ann", titled.id, role="user", content="later")
        first = (await chat.search(None, "weather"))[0]
        assert (first.conversation.id, first.message_id) == (titled.id, None)
