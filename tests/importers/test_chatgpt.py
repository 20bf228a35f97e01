"""The ChatGPT export importer: branches, multimodal parts, hidden and null nodes,
attachments, idempotence, bounds, and generated mapping trees."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from standby.chat.store import ChatStore
from standby.errors import ExportTooLarge, ExportUnreadable
from standby.importers import chatgpt
from standby.importers.archive import ArchiveLimits
from standby.importers.tree import conversation_id, to_thread
from tests.importers.exports import gpt_conversation, gpt_message, write_export

T = 1_700_000_000.0
PHOTO = {"id": "file-abc123", "name": "photo.png", "size": 2048, "mime_type": "image/png"}
NOTES = {"id": "file-notes9", "name": "notes.pdf", "size": 9000, "mime_type": "application/pdf"}


def _trip() -> dict[str, Any]:
    """A conversation with everything: a null root, a hidden system prompt, custom
    instructions, a regenerated answer, an image with a question, code run by the
    python tool, and reasoning."""
    image = {
        "content_type": "image_asset_pointer",
        "asset_pointer": "file-service://file-abc123",
        "size_bytes": 2048,
        "width": 640,
        "height": 480,
        "metadata": {"sanitized": True},
    }
    code = {"content_type": "code", "language": "python", "text": "print(6 * 7)"}
    output = {"content_type": "execution_output", "text": "42"}
    context = {
        "content_type": "user_editable_context",
        "user_profile": "I am a traveller",
        "user_instructions": "Be brief",
    }
    thoughts = {"content_type": "thoughts", "thoughts": [{"summary": "hm", "content": "..."}]}
    nodes = [
        ("root", None, None),
        ("sys", "root", gpt_message("sys", "system", "", hidden=True, at=None)),
        ("ctx", "sys", gpt_message("ctx", "user", content=context, hidden=False, at=None)),
        ("q1", "ctx", gpt_message("q1", "user", "Where should I go in May?", at=T + 1)),
        ("a1", "q1", gpt_message("a1", "assistant", "Lisbon.", at=T + 2, model="gpt-4o")),
        ("a2", "q1", gpt_message("a2", "assistant", "Kyoto.", at=T + 3, model="gpt-4o-mini")),
        (
            "q2",
            "a2",
            gpt_message(
                "q2",
                "user",
                image,
                "Is this temple in Kyoto?",
                at=T + 4,
                content_type="multimodal_text",
                attachments=[PHOTO, NOTES],
            ),
        ),
        ("think", "q2", gpt_message("think", "assistant", content=thoughts, at=T + 5)),
        (
            "call",
            "think",
            gpt_message("call", "assistant", content=code, at=T + 6, recipient="python"),
        ),
        (
            "out",
            "call",
            gpt_message("out", "tool", content=output, at=T + 7, author_name="python"),
        ),
        ("empty", "out", gpt_message("empty", "assistant", "", at=T + 8)),
        ("a3", "empty", gpt_message("a3", "assistant", "Yes: Kinkaku-ji.", at=T + 9, model="o3")),
    ]
    return gpt_conversation("c-trip", "May trip", nodes, current="a3", created=T)


async def test_the_current_branch_lands_in_order_and_other_branches_are_kept(
    chat: ChatStore, tmp_path: Path
) -> None:
    export = write_export(tmp_path / "export.zip", [_trip()])
    report = await chatgpt.import_export(chat, export, owner="ana")
    assert (report.imported, report.unchanged, report.messages) == (1, 0, 7)

    [conv] = await chat.conversations("ana")
    assert (conv.title, conv.source, conv.source_id) == ("May trip", "chatgpt", "c-trip")
    assert conv.id == conversation_id("chatgpt", "c-trip", "ana")
    thread = await chat.get("ana", conv.id)
    assert thread is not None
    branch = thread.branch()
    assert [(m.role, m.content) for m in branch] == [
        ("user", "Where should I go in May?"),
        ("assistant", "Kyoto."),
        ("user", "[image: photo.png]\nIs this temple in Kyoto?\n[attachment: notes.pdf]"),
        ("assistant", "```python\nprint(6 * 7)\n```"),
        ("tool", "42"),
        ("assistant", "Yes: Kinkaku-ji."),
    ]
    assert branch[0].parent_id is None  # the skipped nodes above it are gone
    assert [m.model for m in branch if m.role == "assistant"] == ["gpt-4o-mini", "gpt-4o", "o3"]
    lisbon = next(m for m in thread.messages if m.content == "Lisbon.")
    assert thread.siblings(lisbon.id) == (lisbon, branch[1])
    assert lisbon.model == "gpt-4o"

    question = branch[2]
    assert question.extra is not None
    assert question.extra["content_type"] == "multimodal_text"
    assert question.extra["parts"][0]["name"] == "photo.png"
    assert question.extra["parts"][0]["width"] == 640
    assert [a["name"] for a in question.extra["attachments"]] == ["photo.png", "notes.pdf"]
    assert branch[3].extra == {"content_type": "code", "recipient": "python"}
    assert branch[4].extra == {"content_type": "execution_output", "tool": "python"}
    assert branch[5].parent_id == branch[4].id  # under the tool output, past the empty one

    assert report.reasons() == {
        "a placeholder node without a message": 1,
        "a hidden system message": 1,
        "the custom instructions": 1,
        "the model's reasoning (thoughts)": 1,
        "an empty assistant message": 1,
    }
    assert {s.conversation for s in report.skipped} == {"May trip"}

    hits = await chat.search("ana", "Kinkaku")
    assert [h.conversation.id for h in hits] == [conv.id]


async def test_importing_twice_adds_nothing_and_a_newer_export_adds_what_is_new(
    chat: ChatStore, tmp_path: Path
) -> None:
    trip = _trip()
    export = write_export(tmp_path / "export.zip", [trip])
    await chatgpt.import_export(chat, export, owner=None)
    again = await chatgpt.import_export(chat, export, owner=None)
    assert (again.imported, again.updated, again.unchanged, again.messages) == (0, 0, 1, 0)
    assert again.skipped == []  # nothing written, nothing to explain

    mapping = trip["mapping"]
    mapping["a3"]["children"] = ["q3"]
    mapping["q3"] = {
        "id": "q3",
        "message": gpt_message("q3", "user", "Thanks!", at=T + 20),
        "parent": "a3",
        "children": [],
    }
    trip["current_node"] = "q3"
    newer = write_export(tmp_path / "newer.zip", [trip])
    report = await chatgpt.import_export(chat, newer, owner=None)
    assert (report.imported, report.updated, report.messages) == (0, 1, 1)
    [conv] = await chat.conversations(None)
    assert [m.content for m in await chat.branch(None, conv.id)][-1] == "Thanks!"
    thread = await chat.get(None, conv.id)
    assert thread is not None and len(thread.messages) == 8


async def test_each_owner_imports_into_their_own_conversations(
    chat: ChatStore, tmp_path: Path
) -> None:
    export = write_export(tmp_path / "export.zip", [_trip()])
    await chatgpt.import_export(chat, export, owner="ana")
    report = await chatgpt.import_export(chat, export, owner="ben")
    assert report.imported == 1
    [ana] = await chat.conversations("ana")
    [ben] = await chat.conversations("ben")
    assert ana.id != ben.id
    assert await chat.get("ben", ana.id) is None


async def test_the_current_leaf_falls_back_sensibly(chat: ChatStore, tmp_path: Path) -> None:
    skipped_leaf = gpt_conversation(
        "c-1",
        "Skipped leaf",
        [
            ("q", None, gpt_message("q", "user", "hello", at=T)),
            ("a", "q", gpt_message("a", "assistant", "hi", at=T + 1)),
            ("x", "a", gpt_message("x", "assistant", "", at=T + 2)),
        ],
        current="x",
    )
    no_current = gpt_conversation(
        "c-2",
        "No current node",
        [
            ("q", None, gpt_message("q", "user", "pick", at=T)),
            ("old", "q", gpt_message("old", "assistant", "first", at=T + 1)),
            ("new", "q", gpt_message("new", "assistant", "second", at=T + 2)),
        ],
        current=None,
    )
    broken = {"id": "c-3", "title": "No mapping"}
    export = write_export(tmp_path / "export.zip", [skipped_leaf, no_current, broken, 7])
    report = await chatgpt.import_export(chat, export, owner=None)
    assert report.imported == 2
    assert {(s.conversation, s.reason) for s in report.skipped if not s.item} == {
        ("No mapping", "a conversation without a mapping"),
        ("conversation #4", "not a conversation object"),
    }
    by_title = {c.title: c for c in await chat.conversations(None)}
    leaf = await chat.branch(None, by_title["Skipped leaf"].id)
    assert [m.content for m in leaf] == ["hello", "hi"]
    newest = await chat.branch(None, by_title["No current node"].id)
    assert [m.content for m in newest] == ["pick", "second"]


def test_files_that_are_not_an_export_are_refused_clearly(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ExportUnreadable, match="not a zip file"):
        chatgpt.parse(chatgpt.read_member(text, "conversations.json"))
    with pytest.raises(ExportUnreadable, match="no file at"):
        chatgpt.read_member(tmp_path / "missing.zip", "conversations.json")
    other = write_export(tmp_path / "other.zip", [], member="chat.html")
    with pytest.raises(ExportUnreadable, match=r"has no conversations\.json"):
        chatgpt.read_member(other, "conversations.json")
    garbled = write_export(tmp_path / "garbled.zip", None, raw=b"{not json")
    with pytest.raises(ExportUnreadable, match="is not JSON"):
        chatgpt.parse(chatgpt.read_member(garbled, "conversations.json"))
    wrong = write_export(tmp_path / "wrong.zip", {"hello": "world"})
    with pytest.raises(ExportUnreadable, match="not a list of conversations"):
        chatgpt.parse(chatgpt.read_member(wrong, "conversations.json"))
    nested = tmp_path / "nested.zip"
    with zipfile.ZipFile(nested, "w") as archive:
        archive.writestr("export/conversations.json", orjson.dumps([_trip()]))
    assert len(chatgpt.parse(chatgpt.read_member(nested, "conversations.json")).conversations)


def test_a_member_too_large_or_a_zip_bomb_is_refused_before_it_is_read(tmp_path: Path) -> None:
    export = write_export(tmp_path / "export.zip", [_trip()] * 20)
    with pytest.raises(ExportTooLarge, match="over the limit"):
        chatgpt.read_member(export, "conversations.json", ArchiveLimits(member_bytes=1000))
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conversations.json", b"[" + b" " * (64 << 20) + b"]")
    with pytest.raises(ExportTooLarge, match="zip bomb"):
        chatgpt.read_member(bomb, "conversations.json")


# -- generated mapping trees ---------------------------------------------------------

KINDS = ("text", "text", "text", "null", "hidden", "empty", "context")


@st.composite
def mappings(draw: st.DrawFn) -> tuple[dict[str, Any], list[str | None], list[int | None], int]:
    """A conversation whose mapping is a random tree (or forest), with the node kinds
    and parents drawn, and its current node."""
    count = draw(st.integers(1, 24))
    parents: list[int | None] = [None]
    for n in range(1, count):
        parents.append(draw(st.one_of(st.none(), st.integers(0, n - 1))))
    kinds = [draw(st.sampled_from(KINDS)) for _ in range(count)]
    times = [draw(st.one_of(st.none(), st.floats(T, T + 1e6))) for _ in range(count)]
    current = draw(st.integers(0, count - 1))
    nodes = []
    texts: list[str | None] = []
    for n, kind in enumerate(kinds):
        node_id = f"n{n}"
        role = "user" if n % 2 == 0 else "assistant"
        message: dict[str, Any] | None
        if kind == "text":
            message = gpt_message(node_id, role, f"text of {node_id}", at=times[n])
        elif kind == "hidden":
            message = gpt_message(node_id, "system", "secret", hidden=True, at=times[n])
        elif kind == "empty":
            message = gpt_message(node_id, role, "", at=times[n])
        elif kind == "context":
            context = {"content_type": "user_editable_context", "user_profile": "p"}
            message = gpt_message(node_id, "user", content=context, at=times[n])
        else:
            message = None
        texts.append(f"text of {node_id}" if kind == "text" else None)
        parent = parents[n]
        nodes.append((node_id, None if parent is None else f"n{parent}", message))
    conversation = gpt_conversation("c-gen", "generated", nodes, current=f"n{current}")
    return conversation, texts, parents, current


@settings(max_examples=300, deadline=None)
@given(mappings())
def test_every_message_of_the_current_branch_lands_in_order_and_other_branches_stay(
    generated: tuple[dict[str, Any], list[str | None], list[int | None], int],
) -> None:
    raw, texts, parents, current = generated
    thread = to_thread(chatgpt.parse_conversation(raw), "owner")

    def kept_ancestor(n: int | None) -> int | None:
        while n is not None and texts[n] is None:
            n = parents[n]
        return n

    path: list[int] = []
    node: int | None = current
    while node is not None:
        path.append(node)
        node = parents[node]
    expected = [texts[n] for n in reversed(path) if texts[n] is not None]

    by_text = {m.content: m for m in thread.messages}
    assert sorted(by_text) == sorted(t for t in texts if t is not None)  # every kept node
    for n, text in enumerate(texts):
        if text is None:
            continue
        anchor = kept_ancestor(parents[n])
        parent = by_text[text].parent_id
        assert parent == (None if anchor is None else by_text[str(texts[anchor])].id)
    branch = [m.content for m in thread.branch()]
    if expected or not thread.messages:
        assert branch == expected
    else:  # nothing kept on the current path: the newest leaf's branch is shown
        assert not thread.children(thread.branch()[-1].id)
    again = to_thread(chatgpt.parse_conversation(raw), "owner")
    assert again == thread  # the same ids and records every time
