"""``standby import chatgpt|claude``: the real command on zip files, into the plan's
journal database (made and migrated by the import), as a user runs it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from standby.chat.model import Conversation
from standby.chat.store import ChatStore
from standby.cli import main
from standby.journal.sql import open_engine
from tests.importers.exports import (
    claude_conversation,
    claude_message,
    gpt_conversation,
    gpt_message,
    write_export,
)

# the plan as it sits on the gateway's machine: no provider key is needed to import
PLAN = """\
providers:
  openai: {kind: openai, base_url: "https://api.openai.com/v1", api_key: "${OPENAI_API_KEY}"}
routes:
  gpt-4o-mini: {targets: [openai/gpt-4o-mini]}
journal:
  url: "sqlite:///data/journal.db"
"""
T = 1_700_000_000.0


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(
        main, [str(a) for a in args], env={"OPENAI_API_KEY": None}, catch_exceptions=False
    )


def _chatgpt(path: Path) -> Path:
    nodes = [
        ("root", None, None),
        ("q", "root", gpt_message("q", "user", "Plan a picnic", at=T)),
        ("a", "q", gpt_message("a", "assistant", "Bring bread.", at=T + 1, model="gpt-4o")),
    ]
    return write_export(path, [gpt_conversation("c1", "Picnic", nodes, current="a")])


def _conversations(url: str, owner: str | None) -> list[Conversation]:
    async def read() -> list[Conversation]:
        engine = open_engine(url)
        try:
            return await ChatStore(engine).conversations(owner)
        finally:
            await engine.dispose()

    return asyncio.run(read())


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN, encoding="utf-8")
    return path


def test_a_chatgpt_export_is_imported_once_into_the_plans_journal(
    plan: Path, tmp_path: Path
) -> None:
    export = _chatgpt(tmp_path / "chatgpt-export.zip")
    result = run("import", "chatgpt", export, "--plan", plan, "--owner", "ana")
    assert result.exit_code == 0, result.output
    assert "conversations: 1 imported, 0 updated, 0 already there" in result.output
    assert "messages: 2 added" in result.output
    assert "a placeholder node without a message" in result.output
    url = f"sqlite:///{tmp_path / 'data' / 'journal.db'}"
    [conv] = _conversations(url, "ana")
    assert conv.title == "Picnic" and _conversations(url, "ben") == []

    again = run("import", "chatgpt", export, "--plan", plan, "--owner", "ana")
    assert again.exit_code == 0
    assert "conversations: 0 imported, 0 updated, 1 already there" in again.output
    assert "messages: 0 added" in again.output and "left out" not in again.output


def test_a_claude_export_reports_as_json_into_the_default_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    messages = [
        claude_message("m1", "human", "Hello"),
        claude_message("m2", "assistant", ""),
        claude_message("m3", "assistant", "Hi there"),
    ]
    export = write_export(tmp_path / "claude.zip", [claude_conversation("u1", "Hi", messages)])
    result = run("import", "claude", export, "--json")
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.output)
    assert (report["source"], report["imported"], report["messages"]) == ("claude", 1, 2)
    assert report["skipped"] == [
        {"conversation": "Hi", "item": "m2", "reason": "an empty assistant message"}
    ]
    [conv] = _conversations(f"sqlite:///{tmp_path / 'standby.db'}", None)
    assert conv.source == "claude"


def test_bad_files_and_bounds_are_one_line_errors(plan: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.zip"
    text.write_text("not a zip at all")
    result = run("import", "chatgpt", text, "--plan", plan)
    assert result.exit_code == 1
    assert "is not a zip file" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "data").exists()  # read before the database is touched

    missing = run("import", "claude", tmp_path / "nope.zip", "--plan", plan)
    assert missing.exit_code == 1 and "no file at" in missing.output

    export = _chatgpt(tmp_path / "chatgpt-export.zip")
    small = run("import", "chatgpt", export, "--plan", plan, "--max-size", "100b")
    assert small.exit_code == 1 and "over the limit of 100 bytes" in small.output
    wrong = run("import", "chatgpt", export, "--plan", plan, "--max-size", "lots")
    assert wrong.exit_code == 2 and "bad size" in wrong.output

    bad_plan = tmp_path / "bad.yaml"
    bad_plan.write_text("journal:\n  url: 12\n", encoding="utf-8")
    broken = run("import", "chatgpt", export, "--plan", bad_plan)
    assert broken.exit_code == 1 and "journal" in broken.output


def test_the_installed_command_lists_and_runs_the_importers(plan: Path, tmp_path: Path) -> None:
    standby = Path(sys.executable).with_name("standby")
    listing = subprocess.run(
        [standby, "import", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    assert "chatgpt" in listing.stdout and "claude" in listing.stdout
    export = _chatgpt(tmp_path / "chatgpt-export.zip")
    done = subprocess.run(
        [standby, "import", "chatgpt", export, "--plan", plan],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "1 imported" in done.stdout
