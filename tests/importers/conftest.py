"""Importer fixtures: the chat store of the chat tests, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.chat.conftest import chat, clock, pg_database, store_url

__all__ = ["chat", "clock", "pg_database", "store_url"]
