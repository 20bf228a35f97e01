"""Engines from plain URLs, SQLite's settings, and errors safe to log."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from standby.journal.sql import SQLStore, open_engine


async def test_plain_urls_get_async_drivers(tmp_path: Path) -> None:
    lite = open_engine(f"sqlite:///{tmp_path / 'new' / 'j.db'}")
    pg = open_engine("postgres://u:pw@db.example/journal")
    assert lite.url.drivername == "sqlite+aiosqlite" and (tmp_path / "new").is_dir()
    assert pg.url.drivername == "postgresql+asyncpg"
    assert open_engine("postgresql+asyncpg://u@h/d").url.drivername == "postgresql+asyncpg"
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        open_engine("mysql://u@h/d")
    await lite.dispose()
    await pg.dispose()


async def test_sqlite_runs_in_wal_mode_and_waits_for_locks(tmp_path: Path) -> None:
    store = SQLStore.from_url(f"sqlite:///{tmp_path / 'j.db'}", busy_timeout=2.5)
    async with store.engine.connect() as conn:
        settings = [
            (await conn.execute(sa.text(f"PRAGMA {name}"))).scalar()
            for name in ("journal_mode", "synchronous", "busy_timeout")
        ]
    assert settings == ["wal", 1, 2500]  # synchronous 1 = NORMAL
    await store.close()


async def test_errors_are_explained_without_password_or_sql() -> None:
    store = SQLStore.from_url("postgresql://standby:s3cret-pw@127.0.0.1:9/journal")
    with pytest.raises(Exception) as failure:
        await store.cursor("w")  # nothing listens on port 9
    text = store.explain(failure.value)
    assert text and "s3cret-pw" not in text
    wrapped = sa.exc.DBAPIError(
        "SELECT secret FROM t", {"body": "private"}, Exception("boom s3cret-pw\nmore")
    )
    assert store.explain(wrapped) == "Exception: boom ***"
    await store.close()
