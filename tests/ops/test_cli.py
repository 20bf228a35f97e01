"""``standby export | backup | journal tail`` through click, against real databases."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from standby.cli import main
from standby.journal.sql import SQLStore
from standby.journal.store import RequestRow
from standby.ops.export import from_record
from tests.ops import (
    KINDS,
    Clock,
    converse,
    create_pg_database,
    drop_pg_database,
    journal_stack,
    plan_file,
)

Journal = tuple[str, Path, list[dict[str, Any]]]  # url, plan file, what was sent


async def populate(url: str, wal_dir: Path, count: int = 12) -> list[dict[str, Any]]:
    async with journal_stack(url, wal_dir, Clock(time.time() - 3600)) as stack:
        sent = converse(stack, count)
        await stack.flush()
    return sent


async def stored(url: str) -> list[RequestRow]:
    store = SQLStore.from_url(url)
    try:
        return await store.list_requests(limit=1000)
    finally:
        await store.close()


@pytest.fixture(params=KINDS)
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    kind = request.param
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'journal.db'}"
    else:
        url = asyncio.run(create_pg_database())
    try:
        sent = asyncio.run(populate(url, tmp_path / "wal"))
        yield url, plan_file(tmp_path, url), sent
    finally:
        if kind == "postgresql":
            asyncio.run(drop_pg_database(url))


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(
        main,
        [str(a) for a in args],
        prog_name="standby",
        env={"COLUMNS": "200"},
        catch_exceptions=False,
    )


@pytest.mark.parametrize("command", [["export"], ["backup"], ["journal"], ["journal", "tail"]])
def test_every_journal_command_explains_itself(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Usage: standby" in result.stdout
    assert "--plan" in result.stdout or command == ["journal"]


def test_export_jsonl_round_trips(journal: Journal) -> None:
    url, plan, sent = journal
    result = run("export", "--plan", plan, "--since", "2h")
    assert result.exit_code == 0, result.output
    rows = [from_record(json.loads(line)) for line in result.stdout.splitlines()]
    assert rows == asyncio.run(stored(url))
    assert [r.rid for r in rows] == [s["rid"] for s in reversed(sent)]
    assert "exported 12 requests to stdout" in result.stderr


def test_export_window_state_route_and_redaction(journal: Journal) -> None:
    _, plan, sent = journal
    since = str(sent[2]["at"])
    result = run(
        "export",
        "--plan",
        plan,
        "--since",
        since,
        "--until",
        str(sent[8]["at"]),
        "--state",
        "completed",
        "--redact",
        "metadata.user_email",
        "--redact",
        "request.messages.content",
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    expected = [s["rid"] for s in reversed(sent[2:8]) if s["kind"] not in ("failed", "cut")]
    assert [line["rid"] for line in lines] == expected
    assert "example.com" not in result.stdout
    for line in lines:
        if line["endpoint"] == "chat":
            assert line["metadata"] == {"user_email": "[redacted]", "team": "ops"}
        for message in (line["request"] or {}).get("messages", []):
            assert message["content"] == "[redacted]"
    assert run("export", "--plan", plan, "--route", "nope").stdout == ""


def test_export_openai_chat_to_a_file(journal: Journal, tmp_path: Path) -> None:
    _, plan, sent = journal
    out = tmp_path / "dataset.jsonl"
    result = run("export", "--plan", plan, "--format", "openai-chat", "--out", out)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == sum(s["kind"] in ("chat", "stream", "tools") for s in sent) == 6
    assert all(line["messages"][-1]["role"] == "assistant" for line in lines)
    assert "(6 skipped" in result.stderr
    assert not list(tmp_path.glob("*.partial"))


def test_export_markdown_writes_one_file_per_conversation(journal: Journal, tmp_path: Path) -> None:
    _, plan, sent = journal
    out = tmp_path / "pages"
    result = run(
        "export",
        "--plan",
        plan,
        "--format",
        "markdown",
        "--out",
        out,
        "--redact",
        "metadata.user_email",
    )
    assert result.exit_code == 0, result.output
    pages = sorted(out.glob("*.md"))
    assert len(pages) == 12
    for page, item in zip(pages, sent, strict=True):  # names sort by time
        text = page.read_text()
        assert item["rid"] in page.name and f"`{item['rid']}`" in text
        assert "## Attempts" in text and "example.com" not in text
    assert run("export", "--plan", plan, "--format", "markdown").exit_code == 2


def test_export_refuses_bad_options(journal: Journal) -> None:
    _, plan, _ = journal
    result = run("export", "--plan", plan, "--redact", "respones")
    assert result.exit_code == 2 and "unknown field 'respones'" in result.stderr
    result = run("export", "--plan", plan, "--since", "last tuesday")
    assert result.exit_code == 2 and "bad time" in result.stderr


def test_the_default_journal_lives_beside_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = asyncio.run(populate(f"sqlite:///{tmp_path / 'standby.db'}", tmp_path / "wal", 3))
    plan = plan_file(tmp_path, None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = run("export", "--plan", plan)
    assert len(result.stdout.splitlines()) == len(sent) == 3


def test_a_missing_sqlite_journal_is_named_and_not_created(tmp_path: Path) -> None:
    plan = plan_file(tmp_path, f"sqlite:///{tmp_path}/journal/missing.db")
    for args in (["export"], ["journal", "tail"], ["backup", str(tmp_path / "b.db")]):
        result = run(*args, "--plan", plan)
        assert result.exit_code == 1
        assert f"no journal database at sqlite:///{tmp_path}/journal/missing.db" in result.stderr
    assert not (tmp_path / "journal").exists()


def test_an_unreachable_postgresql_is_named_without_its_password(tmp_path: Path) -> None:
    plan = plan_file(tmp_path, "postgresql://standby:s3cret@127.0.0.1:9/journal")
    for args in (["export"], ["journal", "tail"]):
        result = run(*args, "--plan", plan)
        assert result.exit_code == 1, result.output
        assert (
            "cannot read the journal at postgresql://standby:***@127.0.0.1:9/journal"
            in result.stderr
        )
        assert "s3cret" not in result.output and "Traceback" not in result.output


def test_backup_command(journal: Journal, tmp_path: Path) -> None:
    url, plan, _ = journal
    copy = tmp_path / "copy.db"
    result = run("backup", "--plan", plan, copy)
    if url.startswith("postgresql"):
        assert result.exit_code == 1 and "pg_dump --format=custom" in result.stderr
        assert not copy.exists()
        return
    assert result.exit_code == 0, result.output
    assert "backed up 12 requests" in result.stdout and str(copy) in result.stdout
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT count(*) FROM requests").fetchone()[0] == 12


def test_tail_shows_the_latest_requests_as_a_table(journal: Journal) -> None:
    _, plan, sent = journal
    result = run("journal", "tail", "--plan", plan, "--limit", "4")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "time",
        "request",
        "route",
        "→",
        "answered",
        "by",
        "state",
        "attempts",
        "latency",
    ]
    rids = [word for line in lines for word in line.split() if word.startswith("req_")]
    assert rids == [s["rid"] for s in sent[-4:]]  # the latest four, oldest first
    # the time column is one word today and two (date, time) for an older request
    by_rid = {w: line for line in lines[1:] for w in line.split() if w.startswith("req_")}
    cut = by_rid[sent[-1]["rid"]]  # the last is a cut stream, still accepted
    assert "gpt-4o-mini → -" in cut and "accepted" in cut and cut.endswith("…")
    failed = by_rid[sent[-4]["rid"]]
    assert "failed 503" in failed and "primary:unavailable, backup:unavailable" in failed
    tools = by_rid[sent[-3]["rid"]]
    assert "gpt-4o-mini → primary/gpt-4o-mini" in tools and "primary:ok" in tools
    assert tools.endswith("1.50s")
    empty = run("journal", "tail", "--plan", plan, "--route", "nope")
    assert "no requests in the journal yet" in empty.stdout


async def test_tail_follow_prints_new_requests_until_ctrl_c(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    clock = Clock(time.time() - 5)
    async with journal_stack(url, tmp_path / "wal", clock) as stack:
        first = converse(stack, 2, step=0.1)
        await stack.flush()
        plan = plan_file(tmp_path, url)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from standby.cli import main; main()",
            "journal",
            "tail",
            "--plan",
            str(plan),
            "--follow",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert process.stdout is not None
        seen = await read_until(process.stdout, first[-1]["rid"])
        later = converse(stack, 6, step=0.1)  # ends with a cut stream, still accepted
        await stack.flush()
        seen += await read_until(process.stdout, later[-1]["rid"])
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 130 and b"Traceback" not in err
    for item in first + later:
        assert seen.count(item["rid"]) == 1
    assert seen.index(later[0]["rid"]) > seen.index(first[-1]["rid"])


async def read_until(stream: asyncio.StreamReader, needle: str) -> str:
    text = ""
    async with asyncio.timeout(15):
        while needle not in text:
            text += (await stream.readline()).decode()
    return text
