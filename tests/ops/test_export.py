"""Export formats: pure functions of one row, and round trips through a real journal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from standby.journal.sql import SQLStore
from standby.journal.store import RequestRow
from standby.ops.export import (
    REDACTED,
    chat_line,
    from_record,
    iter_requests,
    jsonl_line,
    markdown_name,
    markdown_page,
    parse_when,
    record,
    redact,
)
from tests.ops import KINDS, converse, database, journal_stack

NOW = 1_790_000_000.0


def row(**changes: Any) -> RequestRow:
    base: dict[str, Any] = dict(
        rid="req_0001",
        received_at=NOW,
        endpoint="chat",
        route="gpt-4o-mini",
        model_asked="gpt-4o-mini",
        stream=False,
        state="completed",
        status=200,
        completion_id="chatcmpl-1",
        provider="backup",
        model="gpt-4o-mini-2024",
        finished_at=NOW + 1.25,
        attempts=[("primary/gpt-4o-mini", "unavailable", 0.1), ("backup/gpt-4o", "ok", 1.1)],
        request={
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Hello | there"},
                        {"type": "image_url", "image_url": {"url": "x"}},
                    ],
                },
            ],
        },
        response={"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}}]},
        content_sent=None,
        usage={"prompt_tokens": 5, "completion_tokens": 2},
        metadata={"user_email": "a@example.com", "team": "ops"},
    )
    base.update(changes)
    return RequestRow(**base)


# -- pure formats ------------------------------------------------------------------------


def test_a_jsonl_line_reads_back_as_the_same_row() -> None:
    original = row()
    line = jsonl_line(original)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert from_record(json.loads(line)) == original


def test_redaction_replaces_dotted_paths_and_crosses_lists() -> None:
    data = record(row())
    hidden = redact(
        data,
        [
            "metadata.user_email",
            "request.messages.content",
            "usage",
            "missing.path",
            "content_sent",
        ],
    )
    assert hidden["metadata"] == {"user_email": REDACTED, "team": "ops"}
    assert [m["content"] for m in hidden["request"]["messages"]] == [REDACTED, REDACTED]
    assert [m["role"] for m in hidden["request"]["messages"]] == ["system", "user"]
    assert hidden["usage"] == REDACTED
    assert hidden["content_sent"] is None  # nothing there to hide
    assert data == record(row())  # the input is untouched


def test_metadata_redaction_covers_the_copy_in_the_request_body() -> None:
    body = {**row().request, "metadata": {"user_email": "a@example.com"}}  # type: ignore[dict-item]
    line = jsonl_line(row(request=body), ["metadata.user_email"])
    assert b"a@example.com" not in line
    assert json.loads(line)["request"]["metadata"] == {"user_email": REDACTED}


def test_redacting_a_whole_body() -> None:
    line = json.loads(jsonl_line(row(), ["request", "response"]))
    assert line["request"] == REDACTED and line["response"] == REDACTED
    assert line["rid"] == "req_0001"


def test_chat_line_is_the_messages_plus_the_answer() -> None:
    line = json.loads(chat_line(row()) or b"")
    assert line["messages"][:2] == row().request["messages"]  # type: ignore[index]
    assert line["messages"][2] == {"role": "assistant", "content": "Hi!"}
    assert set(line) == {"messages"}


@pytest.mark.parametrize(
    "changes",
    [
        {"state": "failed"},
        {"endpoint": "embeddings"},
        {"request": None},
        {"response": None},
        {"state": "interrupted", "content_sent": "Hi"},
    ],
)
def test_chat_line_skips_rows_that_are_not_a_completed_conversation(
    changes: dict[str, Any],
) -> None:
    assert chat_line(row(**changes)) is None


def test_chat_line_with_redaction_keeps_its_shape() -> None:
    line = json.loads(chat_line(row(), ["request.messages.content", "response"]) or b"")
    assert [m["role"] for m in line["messages"]] == ["system", "user", "assistant"]
    assert all(m["content"] == REDACTED for m in line["messages"])
    assert chat_line(row(), ["request.messages"]) is None  # no messages left to train on


@pytest.mark.parametrize(
    "path",
    [
        "response",
        "response.choices",
        "response.choices.message",
        "response.choices.message.content",
    ],
)
def test_a_redacted_answer_stays_an_assistant_message(path: str) -> None:
    line = json.loads(chat_line(row(), [path]) or b"")
    assert line["messages"][-1] == {"role": "assistant", "content": REDACTED}


def test_an_empty_answer_is_no_training_example() -> None:
    empty = {"choices": [{"index": 0, "message": {"role": "assistant", "content": None}}]}
    assert chat_line(row(response=empty)) is None
    assert chat_line(row(response={"choices": ["junk"]})) is None


def test_markdown_page_has_metadata_messages_answer_and_attempts() -> None:
    page = markdown_page(row(), ["metadata.user_email"])
    assert page.startswith("# Hello | there\n")
    assert "| answered by | backup/gpt-4o-mini-2024 |" in page
    assert "| metadata.user_email | [redacted] |" in page
    assert "a@example.com" not in page
    assert "### 1. system\n\nBe brief." in page
    assert "### 2. user\n\nHello | there\n\n_[image_url]_" in page
    assert "## Answer\n\nHi!" in page
    assert "| 2 | backup/gpt-4o | ok | 1.100 |" in page
    assert "| latency | 1.250 s |" in page


def test_markdown_page_of_a_cut_stream_and_of_a_redacted_journal() -> None:
    cut = markdown_page(
        row(
            state="interrupted",
            status=None,
            response=None,
            provider=None,
            content_sent="Half an ans",
            finished_at=None,
        )
    )
    assert "## Sent before the interruption\n\nHalf an ans" in cut and "## Answer" not in cut
    blind = markdown_page(row(request=None, response=None))
    assert "_The request body was not kept (journal.redact)._" in blind
    assert blind.startswith("# Request req_0001")


def test_markdown_names_sort_by_time_and_are_unique() -> None:
    first, second = row(rid="req_a"), row(rid="req_b", received_at=NOW + 1)
    assert markdown_name(first) == "20260921-141320-req_a.md"
    assert sorted([markdown_name(second), markdown_name(first)])[0] == markdown_name(first)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW - 86400),
        ("90m", NOW - 5400),
        ("7d", NOW - 7 * 86400),
        ("2w", NOW - 14 * 86400),
        ("1790000000", 1_790_000_000.0),
        ("2026-09-21T14:13:20Z", NOW),
        ("2026-09-21T14:13:20", NOW),
        ("2026-09-21T16:13:20+02:00", NOW),
        ("2026-09-21", NOW - 51200),
    ],
)
def test_times_are_durations_ago_unix_seconds_or_iso(text: str, expected: float) -> None:
    assert parse_when(text, NOW) == expected


def test_a_bad_time_says_which_forms_work() -> None:
    with pytest.raises(ValueError, match="duration ago"):
        parse_when("yesterday", NOW)


# -- round trips through the real journal ------------------------------------------------


class CountingStore:
    """The real store, noting the page sizes asked for (an export must page)."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store
        self.limits: list[int] = []

    async def list_requests(self, **query: Any) -> list[RequestRow]:
        self.limits.append(query["limit"])
        return await self.store.list_requests(**query)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.mark.parametrize("kind", KINDS)
async def test_jsonl_export_round_trips_through_the_database(kind: str, tmp_path: Path) -> None:
    async with database(kind, tmp_path) as url, journal_stack(url, tmp_path / "wal") as stack:
        sent = converse(stack, 23)
        await stack.flush()
        counting = CountingStore(stack.store)
        lines = [jsonl_line(r) async for r in iter_requests(counting, page=5)]  # type: ignore[arg-type]
        stored = await stack.store.list_requests(limit=1000)
    assert counting.limits == [5] * 5  # 23 rows: four full pages and a short one
    parsed = [from_record(orjson.loads(line)) for line in lines]
    assert parsed == stored
    by_rid = {r.rid: r for r in parsed}
    assert sorted(by_rid) == sorted(s["rid"] for s in sent)
    for item in sent:
        got = by_rid[item["rid"]]
        assert got.request == item["body"] and got.received_at == item["at"]
        if item["kind"] in ("chat", "stream", "tools"):
            assert got.state == "completed"
            assert got.response["choices"][0]["message"] == item["answer"]  # type: ignore[index]
        if item["kind"] == "cut":
            assert got.state == "accepted" and got.content_sent == item["sent_text"]
        if item["kind"] == "failed":
            assert got.status == 503 and got.attempts[1] == (
                "backup/gpt-4o-mini",
                "unavailable",
                0.2,
            )


@pytest.mark.parametrize("kind", KINDS)
async def test_time_windows_select_what_the_store_selects(kind: str, tmp_path: Path) -> None:
    async with database(kind, tmp_path) as url, journal_stack(url, tmp_path / "wal") as stack:
        sent = converse(stack, 12)
        await stack.flush()
        since, until = sent[3]["at"], sent[9]["at"]
        got = [r.rid async for r in iter_requests(stack.store, since=since, until=until, page=2)]
    assert got == [s["rid"] for s in reversed(sent[3:9])]  # newest first, until excluded


@pytest.mark.parametrize("kind", KINDS)
async def test_openai_chat_lines_are_a_valid_dataset(kind: str, tmp_path: Path) -> None:
    async with database(kind, tmp_path) as url, journal_stack(url, tmp_path / "wal") as stack:
        sent = converse(stack, 12)
        await stack.flush()
        lines = [
            line
            async for r in iter_requests(stack.store, page=4)
            if (line := chat_line(r)) is not None
        ]
    answered = [s for s in reversed(sent) if s["kind"] in ("chat", "stream", "tools")]
    assert len(lines) == len(answered) == 6
    for line, item in zip(lines, answered, strict=True):
        data = json.loads(line)
        assert data["messages"][:-1] == item["body"]["messages"]
        last = data["messages"][-1]
        assert last["role"] == "assistant"
        assert all(m["role"] in ("system", "user", "assistant", "tool") for m in data["messages"])
        if item["kind"] == "tools":
            assert last["tool_calls"][0]["function"]["name"] == "add"
            assert data["tools"] == item["body"]["tools"]
        else:
            assert last["content"] == item["answer"]["content"]
