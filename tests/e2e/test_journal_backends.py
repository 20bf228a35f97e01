"""The whole gateway journaling into SQLite and into the real PostgreSQL: answers go out,
the journal has them, and the official SDK reads them back as stored completions."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from standby.sim import Fault, SimProvider
from standby.testing import running_gateway
from tests.conftest import two_target_plan
from tests.journal.conftest import pg_database  # noqa: F401  (fixture)


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


async def test_answers_are_journaled_and_readable(
    primary: SimProvider, backup: SimProvider, journal_url: str, tmp_path: Path
) -> None:
    plan = two_target_plan(primary, backup, journal={"url": journal_url, "store": "always"})
    async with running_gateway(plan, data_dir=tmp_path) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
        plain = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "one"}],
            metadata={"case": "plain"},
        )
        primary.set_fault(Fault("cut_stream", after=4))
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "two"}],
            stream=True,
            metadata={"case": "stream"},
        )
        stream_id = ""
        async for chunk in stream:
            stream_id = chunk.id
        stored = await client.chat.completions.retrieve(plain.id)
        assert stored.choices[0].message.content == primary.expected_text()
        spliced = await client.chat.completions.retrieve(stream_id)
        assert spliced.choices[0].message.content == primary.expected_text()
        page = await client.chat.completions.list(metadata={"case": "stream"})
        assert [c.id for c in page.data] == [stream_id]
        service = gw.app.journal_service
        assert service is not None
        rows = await service.store.list_requests(limit=10)
        attempts = {row.completion_id: row.attempts for row in rows}
        assert [a[1] for a in attempts[stream_id]] == ["stream_broken", "ok"]
        await client.close()
