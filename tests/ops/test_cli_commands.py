"""The journal commands need only the plan's journal section, and tail fits 80 columns.

The journal is written through the real path (``tests.ops``) into SQLite; the
commands run through click as a user would, with ``COLUMNS`` set as a terminal does.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from standby.cli import main
from tests.ops import Clock, converse, journal_stack

# A plan as it sits on the gateway's machine: every provider key comes from there.
PLAN = """\
providers:
  openai: {kind: openai, base_url: "https://api.openai.com/v1", api_key: "${OPENAI_API_KEY}"}
  claude: {kind: anthropic, base_url: "https://api.anthropic.com/v1", api_key: "${CLAUDE_KEY}"}
routes:
  gpt-4o-mini: {targets: [openai/gpt-4o-mini, claude/claude-haiku-4-5]}
server:
  admin_token: "${STANDBY_ADMIN_TOKEN}"
journal:
  url: "sqlite:///journal.db"
"""


@pytest.fixture
def journaled(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """A plan file and the requests journaled beside it (twelve, of six kinds)."""

    async def populate() -> list[dict[str, Any]]:
        url = f"sqlite:///{tmp_path / 'journal.db'}"
        async with journal_stack(url, tmp_path / "wal", Clock(time.time() - 3600)) as stack:
            sent = converse(stack, 12)
            await stack.flush()
        return sent

    sent = asyncio.run(populate())
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN, encoding="utf-8")
    return plan, sent


def run(*args: str | Path, columns: int = 200) -> Result:
    # no OPENAI_API_KEY, CLAUDE_KEY or STANDBY_ADMIN_TOKEN: the journal needs none
    env = {"COLUMNS": str(columns), "OPENAI_API_KEY": None, "CLAUDE_KEY": None}
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def test_the_full_plan_needs_the_provider_keys(journaled: tuple[Path, Any]) -> None:
    plan, _ = journaled
    result = run("plan", "check", plan)
    assert result.exit_code == 1 and "OPENAI_API_KEY is not set" in result.output


@pytest.mark.parametrize(
    "command",
    [["export"], ["journal", "tail"], ["backup", "{copy}"]],
    ids=["export", "tail", "backup"],
)
def test_journal_commands_run_without_the_provider_keys(
    journaled: tuple[Path, list[dict[str, Any]]], tmp_path: Path, command: list[str]
) -> None:
    plan, sent = journaled
    args = [word.format(copy=tmp_path / "copy.db") for word in command]
    result = run(*args, "--plan", plan)
    assert result.exit_code == 0, result.output
    assert "not set" not in result.output
    if command == ["export"]:
        assert len(result.stdout.splitlines()) == len(sent)
    elif command[0] == "backup":
        assert "backed up 12 requests" in result.stdout
    else:
        assert sent[-1]["rid"] in result.stdout


def test_a_bad_journal_section_is_still_located(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.replace("sqlite:///journal.db", "sqlite://journal.db"))
    result = run("export", "--plan", plan)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {plan}:9: journal.url: a SQLite URL has three")
    plan.write_text(PLAN.replace('"sqlite:///journal.db"', '"${JOURNAL_URL}"'))
    result = run("journal", "tail", "--plan", plan)
    assert f"{plan}:9: journal.url: environment variable JOURNAL_URL is not set" in result.stderr


# (console width, headers shown, headers left out)
WIDTHS = [
    (200, ["time", "request", "route → answered by", "state", "attempts", "latency"], []),
    (120, ["time", "request", "route → answered by", "state", "attempts", "latency"], []),
    (100, ["time", "route → answered by", "state", "attempts", "latency"], ["request"]),
    (80, ["time", "route → answered by", "state", "attempts", "latency"], ["request"]),
    (79, ["time", "route → answered by", "state", "latency"], ["request", "attempts"]),
    (50, ["time", "route → answered by", "state"], ["request", "attempts", "latency"]),
]


@pytest.mark.parametrize(("columns", "shown", "left_out"), WIDTHS, ids=[w[0] for w in WIDTHS])
def test_tail_fits_the_terminal(
    journaled: tuple[Path, list[dict[str, Any]]],
    columns: int,
    shown: list[str],
    left_out: list[str],
) -> None:
    plan, sent = journaled
    result = run("journal", "tail", "--plan", plan, "--limit", "6", columns=columns)
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert all(len(line) <= columns for line in result.stdout.splitlines())
    for name in shown:
        assert name in header
    for name in left_out:
        assert name not in header.replace("route → answered by", "")
    # no column squeezed to nothing: every value reads whole (wrapped between words,
    # never cut inside one), one request a line or two
    out = result.stdout
    assert "completed" in out and "failed 503" in out and "accepted" in out
    assert out.count("gpt-4o-mini →") == 6 and "primary/gpt-4o-mini" in out
    assert len(lines) <= 12
    if "request" in shown:
        assert all(s["rid"] in out for s in sent[-6:])
    if "attempts" in shown:
        assert "primary:unavailable," in out and "backup:unavailable" in out
