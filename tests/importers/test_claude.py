"""The Claude export importer: linear and branched conversations, non-text blocks,
attachments and files, skipped messages, idempotence, and generated trees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from standby.chat.store import ChatStore
from standby.errors import ExportUnreadable
from standby.importers import claude
from standby.importers.tree import to_thread
from tests.importers.exports import ZERO_UUID, claude_conversation, claude_message, write_export


def _at(minute: int) -> str:
    return f"2025-03-01T10:{minute:02d}:00.000000Z"


def _linear() -> dict[str, Any]:
    """An older export: no parents, one message after another."""
    report = {
        "file_name": "q3-report.pdf",
        "file_size": 81234,
        "file_type": "pdf",
        "extracted_content": "Revenue grew 12 percent in the third quarter.",
    }
    search = [
        {"type": "thinking", "thinking": "The user wants a summary of the report."},
        {"type": "tool_use", "name": "web_search", "input": {"query": "q3 revenue"}},
        {"type": "tool_result", "name": "web_search", "content": [{"type": "text"}]},
        {"type": "text", "text": "Revenue grew 12%, driven by subscriptions."},
    ]
    return claude_conversation(
        "conv-linear",
        "Quarterly report",
        [
            claude_message("m1", "human", "Summarise this", at=_at(1), attachments=[report]),
            claude_message("m2", "assistant", "", at=_at(2), content=search),
            claude_message(
                "m3", "human", "", at=_at(3), content=[], files=[{"file_name": "chart.png"}]
            ),
            claude_message("m4", "assistant", "   ", at=_at(4), content=[]),
            claude_message("m5", "system", "internal", at=_at(5)),
            claude_message("m6", "assistant", "The chart shows the same trend.", at=_at(6)),
        ],
    )


def _branched() -> dict[str, Any]:
    """A newer export: parents, a regenerated answer, an edited question."""
    return claude_conversation(
        "conv-tree",
        "Naming a cat",
        [
            claude_message("q1", "human", "Name my cat", at=_at(1), parent=ZERO_UUID),
            claude_message("a1", "assistant", "Miso.", at=_at(2), parent="q1"),
            claude_message("a2", "assistant", "Pixel.", at=_at(3), parent="q1"),
            claude_message("q2", "human", "Something longer", at=_at(4), parent="a2"),
            claude_message("a3", "assistant", "Sir Pounce-a-lot.", at=_at(5), parent="q2"),
            claude_message("q2b", "human", "Something shorter", at=_at(6), parent="a2"),
            claude_message("a3b", "assistant", "Bo.", at=_at(7), parent="q2b"),
        ],
        current="a3",
    )


async def test_a_linear_export_lands_with_placeholders_and_named_files(
    chat: ChatStore, tmp_path: Path
) -> None:
    export = write_export(tmp_path / "claude.zip", [_linear()])
    report = await claude.import_export(chat, export, owner="kim")
    assert (report.imported, report.messages) == (1, 4)
    assert report.reasons() == {
        "an empty assistant message": 1,
        "a message from 'system', not human or assistant": 1,
    }
    [conv] = await chat.conversations("kim")
    assert (conv.title, conv.source, conv.source_id) == (
        "Quarterly report",
        "claude",
        "conv-linear",
    )
    branch = await chat.branch("kim", conv.id)
    assert [(m.role, m.content) for m in branch] == [
        ("user", "Summarise this\n[attachment: q3-report.pdf]"),
        (
            "assistant",
            "[tool: web_search]\n[tool result: web_search]\n"
            "Revenue grew 12%, driven by subscriptions.",
        ),
        ("user", "[image: chart.png]"),
        ("assistant", "The chart shows the same trend."),
    ]
    assert branch[-1].parent_id == branch[-2].id  # past the two skipped messages
    assert branch[0].extra is not None
    assert branch[0].extra["attachments"][0]["extracted_content"].startswith("Revenue grew")
    assert branch[1].extra == {
        "parts": [
            {"type": "thinking", "chars": 39},
            {"type": "tool_use", "name": "web_search"},
            {"type": "tool_result", "name": "web_search"},
        ]
    }
    assert branch[0].created_at < branch[1].created_at < branch[3].created_at
    assert conv.created_at == pytest.approx(1740823140.0)
    assert [h.conversation.id for h in await chat.search("kim", "subscriptions")] == [conv.id]


async def test_branches_stay_siblings_and_the_current_leaf_is_the_exports(
    chat: ChatStore, tmp_path: Path
) -> None:
    export = write_export(tmp_path / "claude.zip", [_branched(), _linear()])
    report = await claude.import_export(chat, export, owner=None)
    assert (report.imported, report.messages) == (2, 11)
    conv = next(c for c in await chat.conversations(None) if c.title == "Naming a cat")
    thread = await chat.get(None, conv.id)
    assert thread is not None
    assert [m.content for m in thread.branch()] == [
        "Name my cat",
        "Pixel.",
        "Something longer",
        "Sir Pounce-a-lot.",
    ]
    pixel = thread.branch()[1]
    assert [m.content for m in thread.siblings(pixel.id)] == ["Miso.", "Pixel."]
    assert [m.content for m in thread.children(pixel.id)] == [
        "Something longer",
        "Something shorter",
    ]
    assert thread.branch()[0].parent_id is None  # its parent, the zero uuid, is no message

    again = await claude.import_export(chat, export, owner=None)
    assert (again.imported, again.unchanged, again.messages) == (0, 2, 0)
    after = await chat.get(None, conv.id)
    assert after is not None and len(after.messages) == len(thread.messages)


def test_an_export_that_is_not_claudes_is_refused(tmp_path: Path) -> None:
    wrong = write_export(tmp_path / "wrong.zip", {"conversations": "no"})
    with pytest.raises(ExportUnreadable, match="not a list"):
        claude.parse(claude.read_member(wrong, "conversations.json"))
    parsed = claude.parse(b'[{"name": "no uuid"}, {"uuid": "u", "chat_messages": "x"}]')
    assert [(s.conversation, s.reason) for s in parsed.skipped] == [
        ("no uuid", "a conversation without a uuid")
    ]
    assert parsed.conversations[0].nodes == ()


@st.composite
def trees(draw: st.DrawFn) -> tuple[dict[str, Any], list[str | None], list[int | None], int]:
    """A conversation whose messages form a random tree through their parents."""
    count = draw(st.integers(1, 20))
    parents: list[int | None] = [None]
    for n in range(1, count):
        parents.append(draw(st.one_of(st.none(), st.integers(0, n - 1))))
    kinds = [draw(st.sampled_from(("text", "text", "empty", "other"))) for _ in range(count)]
    current = draw(st.integers(0, count - 1))
    messages, texts = [], []
    for n, kind in enumerate(kinds):
        parent = ZERO_UUID if parents[n] is None else f"u{parents[n]}"
        sender = {"other": "system"}.get(kind, "human" if n % 2 == 0 else "assistant")
        text = f"message {n}" if kind == "text" else ""
        at = _at(draw(st.integers(0, 59)))
        messages.append(claude_message(f"u{n}", sender, text, at=at, parent=parent))
        texts.append(text or None)
    return (
        claude_conversation("conv-gen", "generated", messages, current=f"u{current}"),
        texts,
        parents,
        current,
    )


@settings(max_examples=300, deadline=None)
@given(trees())
def test_generated_trees_keep_the_current_branch_in_order_and_every_other_message(
    generated: tuple[dict[str, Any], list[str | None], list[int | None], int],
) -> None:
    raw, texts, parents, current = generated
    thread = to_thread(claude.parse_conversation(raw), None)
    path: list[int] = []
    node: int | None = current
    while node is not None:
        path.append(node)
        node = parents[node]
    expected = [texts[n] for n in reversed(path) if texts[n] is not None]
    assert sorted(m.content for m in thread.messages) == sorted(t for t in texts if t)
    if expected or not thread.messages:
        assert [m.content for m in thread.branch()] == expected
    by_text = {m.content: m for m in thread.messages}
    for n, text in enumerate(texts):
        if text is None:
            continue
        up = parents[n]
        while up is not None and texts[up] is None:
            up = parents[up]
        expected_parent = None if up is None else by_text[str(texts[up])].id
        assert by_text[text].parent_id == expected_parent
