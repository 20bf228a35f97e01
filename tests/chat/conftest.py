"""Chat fixtures: a migrated journal database, SQLite and PostgreSQL (``store_url`` and
``pg_database`` of the journal's tests), with a ``ChatStore`` on a test clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from standby.chat.store import ChatStore
from standby.journal.migrate import migrate
from standby.journal.schema import chat_messages, conversations
from standby.journal.sql import open_engine
from tests.journal.conftest import pg_database, store_url

__all__ = ["Clock", "chat", "clock", "pg_database", "store_url"]


class Clock:
    """Seconds that move only when told to."""

    def __init__(self, now: float = 1_765_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = 1.0) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def chat(store_url: str, clock: Clock) -> AsyncIterator[ChatStore]:
    engine = open_engine(store_url)
    await migrate(engine)
    async with engine.begin() as conn:  # the PostgreSQL database is per module
        await conn.execute(sa.delete(chat_messages))
        await conn.execute(sa.delete(conversations))
    yield ChatStore(engine, clock=clock)
    await engine.dispose()
