"""Backups of the journal database, taken while the gateway keeps writing.

SQLite: sqlite3's online backup API copies the database in one step, which reads one
snapshot (WAL mode: the gateway's writer is not blocked, and none of its later commits
leak into the copy).  The copy is written beside the destination, switched out of WAL mode
so it is one self-contained file, checked with ``PRAGMA quick_check`` and only then renamed
over the destination: a backup path never holds a half-written database.

PostgreSQL: refused with the ``pg_dump`` command to run instead; a dump by the server's own
tool is consistent, restorable with ``pg_restore`` and needs no help from Standby.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from standby.errors import BackupError

__all__ = ["BackupError", "BackupReport", "backup", "public_url", "sqlite_path"]


@dataclass(frozen=True, slots=True)
class BackupReport:
    path: Path
    size: int  # bytes
    rows: dict[str, int] = field(default_factory=dict)  # per table


def public_url(url: str) -> str:
    """The URL with its password masked, fit for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable journal url>"


def sqlite_path(url: str) -> Path:
    """The database file of a SQLite journal URL; ``BackupError`` for anything else."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise BackupError(f"journal url {public_url(url)}: not a database URL") from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        libpq = parsed.set(drivername="postgresql").render_as_string(hide_password=True)
        raise BackupError(
            f"the journal is in PostgreSQL ({libpq}): back it up with the server's own tool,\n"
            f"  pg_dump --format=custom --file PATH '{libpq}'\n"
            "and restore with pg_restore (see 'Journal: backup, export, retention' in "
            "docs/operations.md)"
        )
    if backend != "sqlite":
        raise BackupError(
            f"journal url {public_url(url)}: cannot back up a {backend!r} "
            "database (SQLite and PostgreSQL are supported)"
        )
    if not parsed.database or parsed.database == ":memory:":
        raise BackupError("the journal is an in-memory SQLite database: nothing to back up")
    return Path(parsed.database)


async def backup(url: str, destination: Path) -> BackupReport:
    """Copy the SQLite journal at ``url`` to ``destination`` (a file, or a directory to
    put a time-stamped file in); an existing file there is replaced."""
    source = sqlite_path(url)
    return await asyncio.to_thread(_backup_sqlite, source, destination)


def _backup_sqlite(source: Path, destination: Path) -> BackupReport:
    if not source.is_file():
        raise BackupError(f"no journal database at {source} (has the gateway run with this plan?)")
    if destination.is_dir():
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        destination = destination / f"standby-journal-{stamp}.db"
    if destination.resolve() == source.resolve():
        raise BackupError("the backup path is the journal database itself")
    if not destination.parent.is_dir():
        raise BackupError(f"no directory {destination.parent} to write the backup in")
    partial = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
    partial.unlink(missing_ok=True)
    try:
        rows = _copy(source, partial)
        os.replace(partial, destination)
    except sqlite3.Error as exc:
        raise BackupError(f"backup of {source} failed: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return BackupReport(destination, destination.stat().st_size, rows)


def _copy(source: Path, target: Path) -> dict[str, int]:
    # read-only: a backup must never create, migrate or lock the journal for writing
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    with closing(src), closing(dst):
        src.backup(dst)  # pages=-1: the whole database in one step, from one snapshot
        dst.execute("PRAGMA journal_mode=DELETE")
        verdict = dst.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise sqlite3.DatabaseError(f"the copy failed its integrity check: {verdict}")
        names = [
            name
            for (name,) in dst.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        rows = {}
        for name in names:
            quoted = '"' + name.replace('"', '""') + '"'
            rows[name] = int(dst.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0])
    return rows
