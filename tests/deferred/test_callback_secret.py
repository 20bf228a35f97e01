"""The callback secret: the plan's, or one generated beside the journal and reused."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from standby.errors import StartupError
from standby.journal.service import (
    CALLBACK_SECRET_FILE,
    JournalService,
    callback_secret,
)
from standby.plan.model import JournalConfig


def test_without_a_plan_secret_one_is_made_owner_readable_and_reused(tmp_path: Path) -> None:
    first = callback_secret(JournalConfig(), tmp_path)
    path = tmp_path / CALLBACK_SECRET_FILE
    assert (first.path, first.made) == (path, True)
    assert len(first.value) >= 43  # 32 random bytes, url-safe base64
    assert path.read_text().strip() == first.value
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = callback_secret(JournalConfig(), tmp_path)
    assert (again.value, again.path, again.made) == (first.value, path, False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CALLBACK_SECRET_FILE]  # no drafts


def test_the_plans_secret_wins_and_nothing_is_written(tmp_path: Path) -> None:
    given = callback_secret(JournalConfig(callback_secret="whsec_plan"), tmp_path)
    assert (given.value, given.path, given.made) == ("whsec_plan", None, False)
    assert list(tmp_path.iterdir()) == []
    assert "whsec_plan" not in repr(given)


def test_an_empty_file_left_by_a_crash_is_replaced(tmp_path: Path) -> None:
    (tmp_path / CALLBACK_SECRET_FILE).write_text("")
    made = callback_secret(JournalConfig(), tmp_path)
    assert made.made and made.value
    assert (tmp_path / CALLBACK_SECRET_FILE).read_text().strip() == made.value


def test_a_data_directory_that_cannot_keep_it_stops_the_start(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("x")
    with pytest.raises(StartupError, match=r"set journal\.callback_secret"):
        callback_secret(JournalConfig(), not_a_directory)


async def test_the_service_says_once_at_start_where_the_secret_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        service = JournalService(JournalConfig(), tmp_path)
        await service.start()
        await service.stop()
    path = tmp_path / CALLBACK_SECRET_FILE
    said = [r for r in caplog.records if "callbacks are signed" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in said] == [
        (logging.WARNING, f"callbacks are signed with the secret in {path}")
    ]
    assert service.callback_secret == path.read_text().strip()
    assert "unsigned" not in caplog.text
    assert service.callback_secret not in caplog.text
